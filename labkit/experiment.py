"""One experiment, end to end: attack -> train the victim -> (defend -> retrain) -> measure.

The engine is four public pieces, and everything that shows a number (the notebooks, the
widgets, ``python -m labkit run`` and ``reproduce``) is built from them:

=====================================  ====================================================
:func:`prepare`                        what exists before the attack: the data split, the
                                       scenario's clean victim, extractor, targets; the
                                       attack's settings checked (a :class:`Context`)
:func:`trial`                          one poisoned training set: craft, train the victim,
                                       the same-budget random control and its victim,
                                       measured (a :class:`Trial`)
:func:`defend`                         one defence applied to a trial: detect and retrain,
                                       train robustly, or guard the model (a
                                       :class:`Defended`)
:func:`measure`                        every trial of a context, defended or not, summed up
                                       in a :class:`~labkit.types.RunResult`
=====================================  ====================================================

:func:`run` is ``measure(prepare(...))``; :func:`sweep` repeats it over one setting of the
attack, its scenario or the defence (a defence setting re-uses the trials: the attack is
crafted once per seed).

Randomness: trial ``i`` of seed ``s`` draws its attack from ``default_rng([s, i, 1])``, its
control from ``[s, i, 2]`` and its defence from ``[s, i, 3]`` (never ``default_rng(s)``, which
the scenario uses to draw the targets; numpy's seeding ignores trailing zeros, so no stream
number is 0). No draw depends on which
other trials ran before, or on anything kept between calls, so the same arguments give the
same numbers in a notebook, a widget and the command line. The engine keeps no cache.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from . import data as data_mod
from . import metrics, models
from .attacks.random_noise import random_noise
from .defences.aggregation import aggregator
from .defences.gradient_audit import head_gradients
from .registry import ENGINE_PROVIDES, AttackSpec, DefenceSpec, get_attack, get_defence, resolve
from .scenarios import SCENARIOS, AttackerView, Setting
from .types import Dataset, Detection, PoisonedDataset, RunResult

__all__ = ["prepare", "craft", "random_control", "trial", "defend", "measure", "run", "sweep", "poison", "repair", "split_settings",
           "defence_curve", "detect", "Context", "Trial", "Defended", "DetectorView", "DEFENDERS", "TRAIN_DEFAULTS", "DEFAULT_DATASET",
           "trial_rng", "model_population", "population_detection"]

#: Training settings every experiment uses unless ``train_kw`` overrides them.
TRAIN_DEFAULTS = {"model": "mlp"}

#: Datasets each scenario runs on when none is named (where the attack is known to work).
DEFAULT_DATASET = {"scratch": "digits", "transfer": "digits", "finetune": "mnist_sample",
                   "federated": "digits", "text": "pydoc_topics", "instruct": "pydoc_instructions",
                   "rag": "pydoc_rag"}

#: The random streams of one trial (see the module docstring).
STREAMS = {"attack": 1, "control": 2, "defence": 3}


def trial_rng(seed: int, i: int, stream: str) -> np.random.Generator:
    """The generator of ``stream`` (``"attack"``, ``"control"`` or ``"defence"``) in trial
    ``i`` of ``seed``: independent of every other trial and stream."""
    return np.random.default_rng([int(seed), int(i), STREAMS[stream]])


def repair(view: Dataset, det: Detection, how: str = "drop") -> Dataset:
    """The defender's fix: drop flagged rows, or relabel them with ``det.labels``."""
    if how == "relabel":
        if det.labels is None:
            raise ValueError(f"{det.defence} proposes no labels; use how='drop'")
        return view.replace(y=det.labels)
    return view.subset(~det.flagged)


def split_settings(spec: AttackSpec, params: Optional[dict], rate: Optional[float]) -> tuple[dict, dict]:
    """``params`` split into the attack's settings and its scenario's settings, checked
    against both (``ValueError`` naming the valid keys before any work)."""
    params = dict(params or {})
    own, scen = spec.settings, spec.scenario_settings
    if rate is not None:
        if "rate" not in own:
            raise ValueError(f"{spec.name} has no rate (its budget is set by "
                             f"{', '.join(k for k in own if k.startswith('n_')) or 'its settings'})")
        params["rate"] = rate
    given = set(spec.takes) | set(ENGINE_PROVIDES)
    unknown = [k for k in params if k not in own and k not in scen and (not spec.open_settings or k in given)]
    if unknown:
        raise ValueError(f"unknown {spec.name} setting(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted([*own, *scen]))}")
    return ({k: v for k, v in params.items() if k not in scen},
            {k: v for k, v in params.items() if k in scen})


# ---- prepare ------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False, eq=False)
class Context:
    """Everything a trial needs, fixed before the attack: the attack and its checked
    settings, the scenario and its :class:`~labkit.scenarios.Setting` (data split, clean
    victim, extractor, targets), the training settings and the seed.

    :meth:`using` gives the same setting with other attack settings (or another attack of
    the same scenario), without preparing again.
    """

    spec: AttackSpec
    scenario: object
    setting: Setting
    craft_kw: dict
    scenario_kw: dict
    train_kw: dict
    seed: int

    @property
    def attack(self) -> str:
        return self.spec.name

    @property
    def train(self) -> Dataset:
        return self.setting.train

    @property
    def test(self) -> Dataset:
        return self.setting.test

    @property
    def baseline(self):
        """The victim trained on clean data (the deployed model, for fine-tuning)."""
        return self.setting.baseline

    @property
    def n_trials(self) -> int:
        """One trial per target for targeted attacks, else one."""
        return self.scenario.n_targets if self.scenario.targeted else 1

    @property
    def targets(self) -> list:
        """``[(target_idx, target_class), ...]``, one per trial (empty when untargeted)."""
        if self.setting.targets is None:
            return []
        return [(int(t), int(c)) for t, c in zip(*self.setting.targets)]

    def attacker_view(self, i: int = 0) -> AttackerView:
        """What the attacker is given in trial ``i``."""
        view = self.scenario.knowledge(self.setting)
        return view.for_target(*self.targets[i]) if self.scenario.targeted else view

    def using(self, attack: Optional[str] = None, *, rate: Optional[float] = None, **settings) -> "Context":
        """This context with other attack settings (checked), or another attack of the same
        scenario; the prepared setting (victim, targets) is shared, not rebuilt."""
        spec = get_attack(attack) if attack is not None else self.spec
        if spec.scenario != self.spec.scenario:
            raise ValueError(f"{spec.name} runs in the {spec.scenario} scenario, this context is "
                             f"{self.spec.scenario}")
        keep = self.craft_kw if spec is self.spec else {}
        craft_kw, scen_kw = split_settings(spec, {**keep, **settings}, rate)
        if scen_kw:
            raise ValueError(f"scenario settings ({', '.join(scen_kw)}) need a new prepare()")
        return dataclasses.replace(self, spec=spec, craft_kw=craft_kw)

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={v!r}" for k, v in {**self.craft_kw, **self.scenario_kw}.items())
        return (f"Context(attack={self.attack!r}, dataset={self.train.name!r}, seed={self.seed}, "
                f"n_trials={self.n_trials}{', ' + kw if kw else ''})")


def prepare(attack: str, *, dataset: Optional[str] = None, seed: int = 0, rate: Optional[float] = None,
            params: Optional[dict] = None, train_kw: Optional[dict] = None,
            split: Optional[data_mod.Split] = None) -> Context:
    """Check the settings, load the data and build what exists before the attack.

    Parameters are those of :func:`run` (which calls this). Unknown names and settings
    raise ``ValueError`` before any data is loaded or model trained.
    """
    spec = get_attack(attack)
    craft_kw, scen_kw = split_settings(spec, params, rate)
    scenario = SCENARIOS[spec.scenario](**scen_kw)
    train_kw = {**TRAIN_DEFAULTS, **(train_kw or {})}
    if split is None:
        split = data_mod.load(dataset or DEFAULT_DATASET[spec.scenario], seed=seed)
    setting = scenario.prepare(split, seed=seed, train_kw=train_kw)
    return Context(spec, scenario, setting, craft_kw, scen_kw, train_kw, int(seed))


# ---- trial --------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False, eq=False)
class Trial:
    """One poisoned training set and what it did.

    ``poisoned`` is what the attacker crafted (ground truth inside), ``train_set`` what the
    victim and the defender see (the fine-tuning batch, or ``poisoned`` itself),
    ``victim`` the model trained on it; ``control`` / ``control_victim`` the same-budget
    random perturbation of the same rows and its victim (targeted attacks with an ``eps``),
    the attack's own control (``label_consistent``: the trigger without the hardening) or
    the scenario's (``text``: the trigger in random rows with true labels); else ``None``;
    ``history`` the attack's per-step record where it keeps one; ``row`` the measured
    numbers (see :func:`trial`).
    """

    i: int
    poisoned: PoisonedDataset
    train_set: PoisonedDataset
    victim: object
    control: Optional[PoisonedDataset]
    control_victim: object
    history: list
    row: dict

    def __repr__(self) -> str:
        return f"Trial(i={self.i}, n_poison={self.poisoned.n_poison}, " + \
            ", ".join(f"{k}={v:.3g}" for k, v in self.row.items() if isinstance(v, float)) + ")"


def craft(ctx: Context, i: int = 0, *, data: Optional[Dataset] = None, rng=None, progress: bool = False,
          history: Optional[list] = None) -> PoisonedDataset:
    """The poisoned training set of trial ``i`` (no victim trained): the attack's verb with
    the attacker's view of the scenario and the trial's attack stream. ``data`` and ``rng``
    replace the context's training set and the trial's stream (for contract tests)."""
    spec = ctx.spec
    given = ctx.attacker_view(i).given([n for n in spec.takes if n not in ENGINE_PROVIDES])
    if "progress" in spec.takes:
        given["progress"] = progress
    if "history" in spec.takes and history is not None:
        given["history"] = history
    rng = trial_rng(ctx.seed, i, "attack") if rng is None else rng
    return spec.craft(ctx.train if data is None else data, rng=rng, **given, **ctx.craft_kw)


def random_control(ctx: Context, poisoned: PoisonedDataset, i: int = 0) -> PoisonedDataset:
    """The same-budget control of trial ``i``: the poisons' rows perturbed by random
    +-``eps`` noise (:func:`labkit.attacks.random_noise`) from the trial's control stream."""
    eps = poisoned.params.get("eps")
    if not eps:
        raise ValueError(f"{poisoned.attack} has no eps budget to match with random noise")
    return random_noise(poisoned, eps=eps, rng=trial_rng(ctx.seed, i, "control"))


def trial(ctx: Context, i: int = 0, *, control: bool = True, progress: bool = False) -> Trial:
    """Trial ``i`` of ``ctx``: craft, train the victim, measure; for targeted attacks also
    the independent label checks and (``control=True``) the same-budget random control.

    ``row`` holds ``clean_accuracy`` and ``attack_success``; targeted attacks add
    ``target_idx``, ``target_class``, ``target_prob`` (the victim's probability of the
    attacker's class on the target), and with a control ``control_prob``. Targeted and
    clean-label attacks add ``label_consistency`` and ``label_checks``
    (:func:`labkit.metrics.label_checks`, calibrated against the control when there is one).
    The control is, in this order: the random noise of a targeted attack's budget, the
    attack's own (``AttackSpec.control``), the scenario's (``text``); with one the row adds
    ``control_success``.
    """
    if not 0 <= i < ctx.n_trials:
        raise ValueError(f"trial must be in [0, {ctx.n_trials}), got {i}")
    scenario, setting, test, seed = ctx.scenario, ctx.setting, ctx.test, ctx.seed + i
    history: list = []
    poisoned = craft(ctx, i, progress=progress, history=history)
    train_set = scenario.training_set(setting, poisoned, i)
    victim = scenario.victim(setting, train_set, seed)
    row = {"clean_accuracy": metrics.clean_accuracy(victim, test),
           "attack_success": metrics.attack_success_rate(victim, poisoned, test)}
    ctl = ctl_victim = None
    if scenario.targeted:
        row.update(target_idx=int(poisoned.target_idx[0]), target_class=int(np.ravel(poisoned.target_class)[0]),
                   target_prob=metrics.target_probability(victim, poisoned, test))
    if control:
        if scenario.targeted and poisoned.params.get("eps"):
            ctl = random_control(ctx, poisoned, i)
        elif ctx.spec.control is not None:
            ctl = ctx.spec.control(poisoned)
        elif hasattr(scenario, "control"):
            ctl = scenario.control(setting, poisoned, trial_rng(ctx.seed, i, "control"))
    if ctl is not None:
        ctl_victim = scenario.victim(setting, scenario.training_set(setting, ctl, i), seed)
        row["control_success"] = metrics.attack_success_rate(ctl_victim, poisoned, test)
        if scenario.targeted:
            row["control_prob"] = metrics.target_probability(ctl_victim, poisoned, test)
    if scenario.targeted or ctx.spec.clean_label:
        exclude = setting.targets[0] if scenario.targeted else []       # never the targets
        checks = metrics.label_checks(poisoned, metrics.held_out(test, exclude), control=ctl)
        row["label_consistency"] = checks["worst"]
        row["label_checks"] = {f: {k: round(v, 4) for k, v in checks[f].items()} for f in metrics.CHECKERS}
    if hasattr(scenario, "trial_extra"):             # the scenario's own numbers (instruct)
        row["extra"] = scenario.trial_extra(setting, victim, poisoned)
    return Trial(i, poisoned, train_set, victim, ctl, ctl_victim, history, row)


# ---- defend -------------------------------------------------------------------------------

class DetectorView:
    """What a detector is given: the suspect training set as the defender sees it (no
    ground truth) and the model it may inspect. :meth:`inputs` computes the arrays a
    detector asks for (:data:`labkit.registry.NEEDS`): ``"pixels"`` (flattened images),
    ``"features"`` (the model's penultimate activations, as the scenario defines them) or
    ``"gradients"`` (per-sample gradients of the inspected model's head). ``incident``:
    the inputs an incident report names and their right labels (a targeted attack's targets,
    which the defender learns about when they go wrong), for detectors that trace one."""

    def __init__(self, data: Dataset, *, features: Callable, inspected: Callable, signed: Optional[dict] = None,
                 incident: Optional[Dataset] = None):
        self.data, self.labels, self.n_classes = data, data.y, data.n_classes
        self._features, self._inspected = features, inspected
        self.signed = signed or {}      # the defender's signed manifest and key, where the scenario has them
        self.incident = incident

    @classmethod
    def of_trial(cls, ctx: Context, t: Trial, *, clean: bool = False) -> "DetectorView":
        """The defender's view of trial ``t``; ``clean=True``: the same view of the clean
        training set and the model trained on it (what the detector flags without an attack)."""
        sc, st = ctx.scenario, ctx.setting
        victim = ctx.baseline if clean else t.victim
        idx = t.poisoned.target_idx
        incident = None if idx is None else ctx.test.subset(np.atleast_1d(idx))
        return cls(ctx.train if clean else t.train_set.as_dataset(), features=lambda X: sc.features(st, victim, X),
                   inspected=lambda: sc.inspected(st, victim), signed=st.extras.get("signed"), incident=incident)

    def inputs(self, needs: str) -> np.ndarray:
        if needs == "pixels":
            return self.data.flat()
        if needs == "words":
            from .text import vocabulary
            if self.data.X.shape[1:] != (1, 1, len(vocabulary())):
                raise ValueError(f"a words detector needs a text dataset (labkit.text), got {self.data!r}")
            return self.data.flat()
        if needs == "features":
            return self._features(self.data.X)
        if needs == "gradients":
            return head_gradients(self._inspected(), self.data.X, self.labels)
        raise ValueError(f"unknown detector input {needs!r}")

    def detect(self, dspec: DefenceSpec, settings: dict, rng) -> Detection:
        """Run the detector ``dspec`` on this view (``n_classes`` and ``rng`` where it takes them)."""
        takes = inspect.signature(dspec.fn).parameters
        optional = {k: v for k, v in {"n_classes": self.n_classes, "rng": rng, **self.signed}.items() if k in takes}
        missing = [k for k in ("manifest", "key") if k in takes and k not in optional]
        if missing:
            raise ValueError(f"{dspec.name} needs a signed manifest, which this scenario does not keep")
        if dspec.traces_incident:
            if self.incident is None:
                raise ValueError(f"{dspec.name} traces an incident: it needs the input that went wrong, "
                                 "which only targeted attacks name")
            optional.update(incident_features=self._features(self.incident.X), incident_labels=self.incident.y)
        return dspec.fn(self.inputs(dspec.needs), self.labels, **optional, **settings)


def detect(data: Dataset, defence: str, *, seed: int = 0, train_kw: Optional[dict] = None, **settings) -> Detection:
    """A registered detector on a plain dataset, as a defender holding only that data runs
    it: the model it inspects is the ``scratch`` scenario's victim trained on ``data``
    (trained only for detectors that look at features or gradients)."""
    dspec = get_defence(defence)
    if dspec.kind != "detector":
        raise ValueError(f"{defence} is a {dspec.kind} defence, not a detector")
    bad = [k for k in settings if k not in dspec.settings]
    if bad:
        raise ValueError(f"unknown {defence} setting(s) {', '.join(bad)}; valid: {', '.join(dspec.settings)}")
    scenario = SCENARIOS["scratch"]()
    setting = Setting(data, data, int(seed), {**TRAIN_DEFAULTS, **(train_kw or {})})
    model = None if dspec.needs == "pixels" else scenario.victim(setting, data, int(seed))
    view = DetectorView(data, features=lambda X: scenario.features(setting, model, X),
                        inspected=lambda: scenario.inspected(setting, model))
    return view.detect(dspec, settings, trial_rng(seed, 0, "defence"))


@dataclass(frozen=True, repr=False, eq=False)
class Defended:
    """A defence applied to a trial: the defended ``model`` (a predictor), the
    ``detection`` (detectors only), the defence's own numbers (``extra``) and ``row``:
    ``clean_accuracy_defended``, ``attack_success_defended``, ``detection`` (the report
    with ground truth applied, detectors only) and ``extra``."""

    model: object
    detection: Optional[Detection]
    extra: dict
    row: dict


def _detector(dspec: DefenceSpec, ctx: Context, t: Trial, settings: dict, rng):
    view = DetectorView.of_trial(ctx, t)
    det = view.detect(dspec, settings, rng)
    extra = {}
    if dspec.traces_incident and ctx.baseline is not None:
        # evaluation: the same incident traced in the clean training set (what it costs without an attack)
        on_clean = DetectorView.of_trial(ctx, t, clean=True).detect(dspec, settings, copy.deepcopy(rng))
        extra = {"flagged_without_attack": float(on_clean.flagged.mean()),
                 "rows_flagged_without_attack": int(on_clean.flagged.sum())}
    return ctx.scenario.victim(ctx.setting, repair(view.data, det, dspec.repair), ctx.seed + t.i), det, extra


def _training(dspec, ctx, t, settings, rng):
    return ctx.scenario.robust_victim(ctx.setting, t.train_set.as_dataset(), ctx.seed + t.i,
                                      **dspec.fn(**settings)), None, {}


def _aggregation(dspec, ctx, t, settings, rng):
    return ctx.scenario.victim(ctx.setting, t.train_set, ctx.seed + t.i,
                               aggregate=aggregator(dspec.fn, **settings)), None, {}


def _model(dspec, ctx, t, settings, rng):
    model = dspec.fn(t.train_set.as_dataset(), **settings)
    takes_truth = "poisoned" in inspect.signature(dspec.report).parameters   # evaluation only (robust_rag)
    return model, None, dspec.report(model, ctx.test, **({"poisoned": t.poisoned} if takes_truth else {}))


def _inference(dspec, ctx, t, settings, rng):
    guard = dspec.fn(t.train_set.as_dataset(), t.victim, rng=rng, **settings)
    return guard, None, dspec.report(guard, ctx.test, t.train_set)


def _model_repair(dspec, ctx, t, settings, rng):
    settings = dict(settings)
    n_clean = int(settings.pop("n_clean", dspec.settings["n_clean"]))
    if not 0 < n_clean < len(ctx.test):
        raise ValueError(f"n_clean must be in [1, {len(ctx.test) - 1}], got {n_clean}")
    held = np.zeros(len(ctx.test), bool)
    held[rng.choice(len(ctx.test), n_clean, replace=False)] = True
    same_draws = copy.deepcopy(rng)                 # the clean-model check below draws the same
    rep = dspec.fn(t.victim, ctx.test.subset(held), rng=rng, **settings)
    rest = ctx.test.subset(~held)                   # rows the defender never saw
    extra = {**rep.report, "clean_accuracy_unseen": metrics.clean_accuracy(rep.model, rest),
             "attack_success_unseen": metrics.attack_success_rate(rep.model, t.poisoned, rest),
             "clean_accuracy_unseen_before": metrics.clean_accuracy(t.victim, rest)}
    masks = getattr(rep.inspection, "masks", None)
    if masks is not None and t.poisoned.trigger is not None:   # evaluation: the real trigger
        real = metrics.trigger_mask(t.poisoned.trigger, ctx.test.X.shape[1:])
        extra["trigger_overlap"] = metrics.trigger_overlap(masks[int(t.poisoned.target_class)], real)
    if "flagged_class" in rep.report and t.poisoned.target_class is not None:   # 1.0: the attacker's class flagged
        extra["flagged_target"] = float(rep.report["flagged_class"] == int(t.poisoned.target_class))
    if "flagged_class" in rep.report and ctx.baseline is not None:
        # evaluation: the same inspection, same clean rows and draws, of the model trained
        # without poison; 1.0 is a false alarm
        on_clean = dspec.fn(ctx.baseline, ctx.test.subset(held), rng=same_draws, **settings)
        extra["flagged_on_clean_model"] = float(on_clean.report["flagged_class"] != -1)
    return rep.model, None, extra


#: Defence kind -> ``fn(dspec, ctx, trial, settings, rng) -> (model, Detection or None, extra)``:
#: the one place each kind's call shape (see :mod:`labkit.registry`) is written.
DEFENDERS: dict[str, Callable] = {"detector": _detector, "training": _training, "aggregation": _aggregation,
                                  "model": _model, "inference": _inference, "model_repair": _model_repair}


def _defence(ctx: Context, defence: str, settings: dict) -> DefenceSpec:
    _, dspec = resolve(ctx.attack, defence)
    bad = [k for k in settings if k not in dspec.settings]
    if bad:
        raise ValueError(f"unknown {defence} setting(s) {', '.join(bad)}; valid: {', '.join(dspec.settings)}")
    return dspec


def defend(ctx: Context, t: Trial, defence: str, **settings) -> Defended:
    """Apply ``defence`` (with ``settings``) to trial ``t``: the defended model and its numbers.

    The defender sees the trial's training set and victim, never its ground truth; the
    report compares the detection with the ground truth afterwards.
    """
    dspec = _defence(ctx, defence, settings)
    model, det, extra = DEFENDERS[dspec.kind](dspec, ctx, t, settings, trial_rng(ctx.seed, t.i, "defence"))
    row = {"clean_accuracy_defended": metrics.clean_accuracy(model, ctx.test),
           "attack_success_defended": metrics.attack_success_rate(model, t.poisoned, ctx.test), "extra": extra}
    if det is not None:
        ts = t.train_set
        report = metrics.detection_report(det, ts)
        labels = ts.y[ts.poison_idx]
        if labels.size and (labels == labels[0]).all():   # the poisons share one label
            same = (ts.y == labels[0]) & ~ts.is_poison
            report["poison_class_flag_rate"] = float(det.flagged[same].mean()) if same.any() else 0.0
        row["detection"] = report
    return Defended(model, det, extra, row)


# ---- measure and run ----------------------------------------------------------------------

def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def measure(ctx: Context, *, defence: Optional[str] = None, defence_params: Optional[dict] = None,
            trials: Optional[list] = None, progress: bool = False) -> RunResult:
    """Every trial of ``ctx`` (or the given ``trials``), defended with ``defence`` if named,
    summed up (means over trials). ``RunResult.trials`` holds the :class:`Trial` objects and
    ``RunResult.defended`` the :class:`Defended` ones."""
    t0 = time.perf_counter()
    dkw = dict(defence_params or {})
    if defence is not None:
        _defence(ctx, defence, dkw)                    # refuse before any work
    if trials is None:
        idx = range(ctx.n_trials)
        if progress and ctx.n_trials > 1:
            from tqdm.auto import tqdm
            idx = tqdm(idx, desc=f"{ctx.attack} trials", leave=False)
        trials = [trial(ctx, i, progress=progress and ctx.n_trials == 1) for i in idx]
    defended = [defend(ctx, t, defence, **dkw) for t in trials] if defence is not None else []
    rows = [{**t.row, **(d.row if d else {}), "extra": {**t.row.get("extra", {}), **(d.row["extra"] if d else {})}}
            for t, d in zip(trials, defended or [None] * len(trials))]
    detection = None
    reports = [r["detection"] for r in rows if "detection" in r]
    if len(reports) == 1:
        detection = reports[0]
    elif reports:
        # precision is None where a trial's detector flagged nothing: the mean of the others,
        # None when no trial's is defined
        detection = {}
        for k in reports[0]:
            vals = [r.get(k) for r in reports if r.get(k) is not None and not np.isnan(r.get(k))]
            detection[k] = float(np.mean(vals)) if vals else None
    extra = dict(rows[0].get("extra", {})) if len(rows) == 1 else {}
    if len(rows) > 1 and defended:
        # the defence's own numbers (e.g. what a detector flags without an attack): means over trials
        extra.update({k: _mean([d.extra for d in defended], k) for k, v in defended[0].extra.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if ctx.scenario.targeted:
        extra["trials"] = [{k: v for k, v in r.items() if k != "extra"} for r in rows]
        rehearsed = [t.poisoned.params.get("rehearsal_flips") for t in trials]
        if all(r is not None for r in rehearsed):
            # the targets the attacker's own rehearsal flipped: what an attacker can tell apart
            extra["attackable_share"] = float(np.mean(rehearsed))
            extra["success_attackable"] = _mean([r for r, ok in zip(rows, rehearsed) if ok], "attack_success")
    if "label_checks" in rows[0]:
        # each checker's mean reading over the trials (label_consistency takes the worst per trial)
        for key, field in (("checks", "kept"), ("checks_control", "control_kept"), ("checks_calibrated", "calibrated")):
            if field in rows[0]["label_checks"][metrics.CHECKERS[0]]:
                extra[key] = {f: float(np.nanmean([r["label_checks"][f][field] for r in rows]))
                              for f in metrics.CHECKERS}
    first = trials[0].poisoned
    return RunResult(
        attack=ctx.attack, defence=defence, dataset=ctx.train.name, seed=ctx.seed,
        params={**({"rate": first.params["rate"]} if "rate" in first.params else {}),
                **first.params, **ctx.scenario_kw},
        n_train=len(ctx.train), n_poison=first.n_poison,
        clean_accuracy_no_attack=metrics.clean_accuracy(ctx.baseline, ctx.test),
        clean_accuracy=_mean(rows, "clean_accuracy"), attack_success=_mean(rows, "attack_success"),
        clean_accuracy_defended=_mean(rows, "clean_accuracy_defended"),
        attack_success_defended=_mean(rows, "attack_success_defended"),
        control_success=_mean(rows, "control_success"), label_consistency=_mean(rows, "label_consistency"),
        detection=detection, seconds=time.perf_counter() - t0, extra=extra,
        poisoned=first, verdict=defended[0].detection if defended else None,
        trials=list(trials), defended=defended)


def run(attack: str, *, defence: Optional[str] = None, dataset: Optional[str] = None, seed: int = 0,
        rate: Optional[float] = None, params: Optional[dict] = None,
        defence_params: Optional[dict] = None, train_kw: Optional[dict] = None,
        split: Optional[data_mod.Split] = None, progress: bool = False) -> RunResult:
    """Run one attack (and optionally one defence that applies to it) and measure everything:
    ``measure(prepare(...), defence=...)``.

    Parameters
    ----------
    attack : str
        A name from :data:`labkit.registry.ATTACKS`.
    defence : str, optional
        A name from the attack's ``defences``; any other raises ``ValueError`` at once.
    dataset : str, optional
        A name from :data:`labkit.data.DATASETS`; default: where the attack's scenario works
        (``mnist_sample`` for fine-tuning, ``digits`` otherwise). Ignored with ``split``.
    seed : int
        Seeds the split, the attack, the targets and every training run.
    rate : float, optional
        The attack's budget, for attacks that take one (default: the attack's own).
    params : dict
        Settings of the attack and of its scenario (e.g. ``n_targets``), by name.
    defence_params : dict
        Settings of the defence.
    train_kw : dict
        Overrides of :data:`TRAIN_DEFAULTS` for the victim's training.
    split : Split, optional
        Use this train/test pair instead of loading ``dataset``.

    Returns
    -------
    RunResult
        Targeted attacks: ``attack_success`` is the fraction of targets flipped over
        ``n_targets`` trials, accuracies and detection reports are means over trials,
        ``control_success`` is the same-budget random-noise control and
        ``label_consistency`` the fraction of poisons an independent classifier still
        gives their own label; ``extra["trials"]`` has one row per target.
    """
    t0 = time.perf_counter()
    if defence is not None:
        resolve(attack, defence)                       # refuse before loading anything
    ctx = prepare(attack, dataset=dataset, seed=seed, rate=rate, params=params, train_kw=train_kw, split=split)
    result = measure(ctx, defence=defence, defence_params=defence_params, progress=progress)
    return dataclasses.replace(result, seconds=time.perf_counter() - t0)


def poison(attack: str, *, dataset: Optional[str] = None, seed: int = 0, rate: Optional[float] = None,
           params: Optional[dict] = None) -> PoisonedDataset:
    """The training set ``attack`` poisons in its scenario (trial 0: the first target for
    targeted attacks), without training a victim on it: for audits and practice
    (``python -m labkit audit --attack NAME``)."""
    return craft(prepare(attack, dataset=dataset, seed=seed, rate=rate, params=params), 0)


def defence_curve(ctx: Context, defence: str, name: str, values: Iterable, *, trials: Optional[list] = None,
                  defence_params: Optional[dict] = None) -> list[RunResult]:
    """:func:`measure` of the same trials (crafted once, or the given ``trials``) defended
    with every value of the defence setting ``name``: one RunResult per value, each equal to
    ``run(..., defence=defence, defence_params={name: value})``. Its ``attack_success`` is
    the undefended point of the curve."""
    values = list(values)
    _defence(ctx, defence, {**(defence_params or {}), name: values[0]} if values else {})
    if trials is None:
        trials = [trial(ctx, i) for i in range(ctx.n_trials)]
    return [measure(ctx, defence=defence, defence_params={**(defence_params or {}), name: v}, trials=trials)
            for v in values]


def sweep(attack: str, name: str, values: Iterable, *, seeds: Iterable[int] = (0,),
          defence: Optional[str] = None, progress: bool = True, **run_kw) -> list[RunResult]:
    """:func:`run` for every value of one setting and every seed.

    ``name`` is ``"rate"``, a setting of the attack or its scenario, or (with ``defence``) a
    setting of the defence: then each seed's trials are crafted once and every value
    defends the same trials (the numbers equal separate :func:`run` calls). ``run_kw`` go
    to :func:`run`. Returns the results in order (values outer, seeds inner).
    """
    from tqdm.auto import tqdm

    values, seeds = list(values), list(seeds)
    spec = get_attack(attack)
    of_attack = name == "rate" or name in spec.settings or name in spec.scenario_settings
    on_defence = False
    if defence is not None:
        _, dspec = resolve(attack, defence)
        on_defence = not of_attack and name in dspec.settings
    if not of_attack and not on_defence and not spec.open_settings:
        raise ValueError(f"{name} is no setting of {attack}" + (f" or {defence}" if defence else ""))
    out: dict = {}
    bar = tqdm(total=len(values) * len(seeds), desc=f"sweep {attack} over {name}", disable=not progress,
               leave=False)
    for s in seeds:
        if on_defence:
            t0 = time.perf_counter()
            ctx = prepare(attack, seed=s, **{k: v for k, v in run_kw.items() if k != "defence_params"})
            curve = defence_curve(ctx, defence, name, values, defence_params=run_kw.get("defence_params"))
            setup = (time.perf_counter() - t0 - sum(r.seconds for r in curve)) / max(len(values), 1)
            for v, r in zip(values, curve):
                out[v, s] = dataclasses.replace(r, seconds=r.seconds + setup)
            bar.update(len(values))
            continue
        for v in values:
            kw = dict(run_kw)
            if name == "rate":
                kw["rate"] = v
            else:
                kw["params"] = {**kw.get("params", {}), name: v}
            out[v, s] = run(attack, seed=s, defence=defence, **kw)
            bar.update()
    bar.close()
    return [out[v, s] for v in values for s in seeds]


# ---- populations of models (lesson 9's population detector) -------------------------------

def model_population(n: int, *, dataset: Optional[str] = None, seed: int = 0, triggers=("patch",),
                     rate: float = 0.05, train_kw: Optional[dict] = None, start: int = 0,
                     progress: bool = False) -> tuple:
    """``n`` models trained on one dataset, numbered ``start, start + 1, ...``: even ones clean,
    odd ones backdoored with a random trigger (kind cycling through ``triggers``; a patch of
    random size 1-3 at a random position, or a blend of random pattern) and a random target
    class. Model ``i`` draws everything from ``(seed, i)`` alone, so a population is the same
    however it is sliced, and populations with disjoint numbers share no model.

    Returns ``(models, is_backdoored (n,) bool, specs)``: ``specs`` one dict per model
    (``trigger``, ``target_class``, settings), for evaluation only.
    """
    from .attacks.backdoor import POSITIONS, add_backdoor

    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    train = data_mod.load(dataset or DEFAULT_DATASET["scratch"], seed=seed).train
    kw = {**TRAIN_DEFAULTS, **(train_kw or {})}
    models_, flags, specs = [], [], []
    from tqdm.auto import tqdm

    for i in tqdm(range(start, start + n), desc="models", disable=not progress, leave=False):
        rng = np.random.default_rng([int(seed), i, 9])
        model_seed = int(rng.integers(2**31))
        if i % 2 == 0:
            data, spec = train, {"trigger": None}
        else:
            kind = triggers[(i // 2) % len(triggers)]
            target = int(rng.integers(train.n_classes))
            tkw = ({"size": int(rng.integers(1, 4)), "position": POSITIONS[int(rng.integers(len(POSITIONS)))]}
                   if kind == "patch" else {"seed": int(rng.integers(2**31))})
            data = add_backdoor(train, trigger=kind, target_class=target, rate=rate, rng=rng, **tkw)
            spec = {"trigger": kind, "target_class": target, **tkw}
        models_.append(models.train(data, seed=model_seed, **kw))
        flags.append(i % 2 == 1)
        specs.append(spec)
    return models_, np.array(flags), specs


#: Training of population models: fewer epochs than a lesson's victim (a population is many models).
POPULATION_TRAIN = {"epochs": 30}


def population_detection(*, dataset: Optional[str] = None, seed: int = 0,
                         n_shadow: int = 100, n_held_out: int = 40, n_queries: int = 50,
                         train_kw: Optional[dict] = None, progress: bool = False) -> dict:
    """The population detector (MNTD-style), measured: the defender trains ``n_shadow`` models
    of its own (half clean, half backdoored with random patch triggers), fits a meta-classifier
    on their answers to ``n_queries`` random inputs, then scores models it never saw:
    ``n_held_out`` patch-backdoored or clean ones (a trigger kind it trained on) and
    ``n_held_out`` blend-backdoored or clean ones (a kind it never saw). The three groups are
    disjoint numbers of one :func:`model_population`.

    Returns ``{"auroc_seen", "auroc_unseen", "scores_seen", "scores_unseen",
    "is_backdoored_seen", "is_backdoored_unseen", "n_shadow", "n_held_out", "n_queries"}``.
    """
    from .defences.meta_classifier import meta_classifier, meta_scores, query_outputs, random_queries

    if n_shadow < 2 or n_held_out < 2 or n_queries < 1:
        raise ValueError(f"need n_shadow >= 2, n_held_out >= 2, n_queries >= 1; got {n_shadow}, {n_held_out}, {n_queries}")
    kw = {**POPULATION_TRAIN, **(train_kw or {})}
    pop = functools.partial(model_population, dataset=dataset, seed=seed, train_kw=kw, progress=progress)
    shadow, y_shadow, _ = pop(n_shadow)
    seen, y_seen, _ = pop(n_held_out, start=n_shadow)
    unseen, y_unseen, _ = pop(n_held_out, start=n_shadow + n_held_out, triggers=("blend",))
    shape = data_mod.load(dataset or DEFAULT_DATASET["scratch"], seed=seed).train.X.shape[1:]
    queries = random_queries(shape, n=n_queries, rng=np.random.default_rng([int(seed), 11]))
    clf = meta_classifier(query_outputs(shadow, queries), y_shadow)
    s_seen, s_unseen = meta_scores(clf, query_outputs(seen, queries)), meta_scores(clf, query_outputs(unseen, queries))
    return {"auroc_seen": metrics.auroc(s_seen, y_seen), "auroc_unseen": metrics.auroc(s_unseen, y_unseen),
            "scores_seen": s_seen.tolist(), "scores_unseen": s_unseen.tolist(),
            "is_backdoored_seen": y_seen.tolist(), "is_backdoored_unseen": y_unseen.tolist(),
            "n_shadow": n_shadow, "n_held_out": n_held_out, "n_queries": n_queries}

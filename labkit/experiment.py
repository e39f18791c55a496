"""One experiment, end to end: attack -> train the victim -> (defend -> retrain) -> measure.

:func:`run` is what ``python -m labkit run`` and the notebooks call, for every attack and
every defence that applies to it; :func:`sweep` repeats it over one setting (the curves in
every lesson). How the victim trains comes from the attack's scenario
(:mod:`labkit.scenarios`); targeted attacks run ``n_targets`` independent trials inside
:func:`run`, each with the same-budget random-noise control.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import functools
import inspect
import json
import time
from typing import Iterable, Optional

import numpy as np

from . import data as data_mod
from . import metrics, models
from .attacks.random_noise import random_noise
from .defences.aggregation import aggregator
from .defences.gradient_audit import head_gradients
from .registry import SCENARIO_PROVIDES, resolve
from .scenarios import SCENARIOS
from .types import Dataset, Detection, PoisonedDataset, RunResult

__all__ = ["run", "sweep", "poison", "repair", "split_settings", "TRAIN_DEFAULTS"]

#: Training settings every experiment uses unless ``train_kw`` overrides them.
TRAIN_DEFAULTS = {"model": "mlp"}

#: Datasets each scenario runs on when none is named (where the attack is known to work).
DEFAULT_DATASET = {"scratch": "digits", "transfer": "digits", "finetune": "mnist_sample",
                   "federated": "digits"}


def repair(view: Dataset, det: Detection, how: str = "drop") -> Dataset:
    """The defender's fix: drop flagged rows, or relabel them with ``det.labels``."""
    if how == "relabel":
        if det.labels is None:
            raise ValueError(f"{det.defence} proposes no labels; use how='drop'")
        return view.replace(y=det.labels)
    return view.subset(~det.flagged)


def split_settings(spec, params: Optional[dict], rate: Optional[float]) -> tuple[dict, dict]:
    """``params`` split into the attack's settings and its scenario's settings, checked
    against both signatures (``ValueError`` naming the valid keys before any work)."""
    params = dict(params or {})
    own, scen = spec.settings, spec.scenario_settings
    if rate is not None:
        if "rate" not in own:
            raise ValueError(f"{spec.name} has no rate (its budget is set by "
                             f"{', '.join(k for k in own if k.startswith('n_')) or 'its settings'})")
        params["rate"] = rate
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(spec.craft).parameters.values())
    unknown = [k for k in params if k not in own and k not in scen and (not takes_any or k in SCENARIO_PROVIDES)]
    if unknown:
        raise ValueError(f"unknown {spec.name} setting(s) {', '.join(sorted(unknown))}; "
                         f"valid: {', '.join(sorted([*own, *scen]))}")
    return ({k: v for k, v in params.items() if k not in scen},
            {k: v for k, v in params.items() if k in scen})


@functools.lru_cache(maxsize=16)
def _split(dataset: str, seed: int) -> data_mod.Split:
    return data_mod.load(dataset, seed=seed)


@functools.lru_cache(maxsize=16)
def _scratch_baseline(dataset: str, seed: int, train_items: str):
    """The clean model of the ``scratch`` scenario (memoised: training is deterministic)."""
    return models.train(_split(dataset, seed).train, seed=seed, **json.loads(train_items))


_VICTIMS: dict = {}


def _memo(key, make):
    """Memoise ``make()`` under a JSON ``key`` (the last few): a widget that moves only a
    defence setting does not re-run the attack. Settings that are not plain JSON are never
    memoised. Everything memoised is deterministic, so results never depend on it."""
    try:
        k = json.dumps(key, sort_keys=True)
    except TypeError:
        return make()
    if k not in _VICTIMS:
        if len(_VICTIMS) >= 8:
            _VICTIMS.pop(next(iter(_VICTIMS)))
        _VICTIMS[k] = make()
    return _VICTIMS[k]


def _call(fn, *args, optional: dict, **kw):
    """``fn(*args, **kw)``, plus those of ``optional`` that ``fn`` names in its signature."""
    sig = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in optional.items() if k in sig}, **kw)


def _defend(dspec, dkw, scenario, setting, train_set: PoisonedDataset, victim, seed, rng, test):
    """The one defence step: ``(defended predictor, Detection or None, extra dict)``."""
    view = train_set.as_dataset()
    if dspec.kind == "detector":
        inputs = {"pixels": lambda: view.flat(),
                  "features": lambda: scenario.features(setting, victim, view.X),
                  "gradients": lambda: head_gradients(scenario.inspected(setting, victim), view.X, view.y),
                  }[dspec.needs]()
        det = _call(dspec.fn, inputs, view.y, optional={"n_classes": view.n_classes, "rng": rng}, **dkw)
        return scenario.victim(setting, repair(view, det, dspec.repair), seed), det, {}
    if dspec.kind == "training":
        return scenario.robust_victim(setting, view, seed, **dspec.fn(**dkw)), None, {}
    if dspec.kind == "aggregation":
        return scenario.victim(setting, train_set, seed, aggregate=aggregator(dspec.fn, **dkw)), None, {}
    if dspec.kind == "model":
        defended = dspec.fn(view, **dkw)
        return defended, None, dspec.report(defended, test)
    guard = dspec.fn(view, victim, rng=rng, **dkw)                            # inference
    return guard, None, dspec.report(guard, test, train_set)


def _trial(spec, dspec, dkw, scenario, setting, craft_kw, i, rng, defence_rng, progress, memo_key):
    """One poisoned training set: craft, train the victim, control, defend, measure."""
    test, seed = setting.test, setting.seed + i
    given = {**scenario.knowledge(setting), "rng": rng, "progress": progress}
    if scenario.targeted:
        given.update(target_idx=int(setting.targets[0][i]), target_class=int(setting.targets[1][i]))

    def attack_and_victim():
        poisoned = _call(spec.craft, setting.train, optional=given, **craft_kw)
        train_set = scenario.training_set(setting, poisoned, i)
        return poisoned, train_set, scenario.victim(setting, train_set, seed)

    poisoned, train_set, victim = (attack_and_victim() if memo_key is None
                                   else _memo([memo_key, i, craft_kw], attack_and_victim))
    row = {"clean_accuracy": metrics.clean_accuracy(victim, test),
           "attack_success": metrics.attack_success_rate(victim, poisoned, test)}
    if scenario.targeted:
        row.update(target_idx=int(poisoned.target_idx[0]), target_class=int(np.ravel(poisoned.target_class)[0]))
        checks = metrics.label_checks(poisoned, metrics.held_out(test, setting.targets[0]))   # no target
        row["label_consistency"] = checks["worst"]
        row["label_checks"] = {f: {k: round(v, 4) for k, v in checks[f].items()} for f in metrics.CHECKERS}
        eps = poisoned.params.get("eps")
        if eps:
            control = random_noise(poisoned, eps=eps, rng=rng)
            ctl_victim = scenario.victim(setting, scenario.training_set(setting, control, i), seed)
            row["control_success"] = metrics.attack_success_rate(ctl_victim, poisoned, test)
    det = None
    if dspec is not None:
        defended, det, extra = _defend(dspec, dkw, scenario, setting, train_set, victim, seed,
                                       defence_rng, test)
        row.update(clean_accuracy_defended=metrics.clean_accuracy(defended, test),
                   attack_success_defended=metrics.attack_success_rate(defended, poisoned, test), extra=extra)
        if det is not None:
            report = metrics.detection_report(det, train_set)
            labels = train_set.y[train_set.poison_idx]
            if labels.size and (labels == labels[0]).all():   # the poisons share one label
                same = (train_set.y == labels[0]) & ~train_set.is_poison
                report["poison_class_flag_rate"] = float(det.flagged[same].mean()) if same.any() else 0.0
            row["detection"] = report
    return poisoned, det, row


def _mean(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def run(attack: str, *, defence: Optional[str] = None, dataset: Optional[str] = None, seed: int = 0,
        rate: Optional[float] = None, params: Optional[dict] = None,
        defence_params: Optional[dict] = None, train_kw: Optional[dict] = None,
        split: Optional[data_mod.Split] = None, progress: bool = False) -> RunResult:
    """Run one attack (and optionally one defence that applies to it) and measure everything.

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
    spec, dspec = resolve(attack, defence)
    craft_kw, scen_kw = split_settings(spec, params, rate)
    dkw = dict(defence_params or {})
    if dspec is not None:
        bad = [k for k in dkw if k not in dspec.settings]
        if bad:
            raise ValueError(f"unknown {defence} setting(s) {', '.join(bad)}; valid: {', '.join(dspec.settings)}")
    scenario = SCENARIOS[spec.scenario](**scen_kw)
    train_kw = {**TRAIN_DEFAULTS, **(train_kw or {})}
    dataset = dataset or DEFAULT_DATASET[spec.scenario]
    memo_key = None
    if split is None:
        split = _split(dataset, seed)
        memo_key = [attack, dataset, seed, scen_kw, train_kw]
    baseline = None
    if spec.scenario == "scratch" and memo_key is not None:
        baseline = _scratch_baseline(dataset, seed, json.dumps(train_kw, sort_keys=True))
    setting = scenario.prepare(split, seed=seed, train_kw=train_kw, baseline=baseline)
    # the attack draws from default_rng(seed), as `craft(..., rng=seed)` would; the defence
    # has its own stream, so a memoised attack leaves the defence's randomness unchanged
    rng, defence_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    n_trials = scenario.n_targets if scenario.targeted else 1
    trials = range(n_trials)
    if progress and n_trials > 1:
        from tqdm.auto import tqdm
        trials = tqdm(trials, desc=f"{attack} trials", leave=False)
    first, rows = None, []
    for i in trials:
        poisoned, det, row = _trial(spec, dspec, dkw, scenario, setting, craft_kw, i, rng,
                                    defence_rng, progress and n_trials == 1, memo_key)
        first = first or (poisoned, det)
        rows.append(row)
    detection = None
    reports = [r["detection"] for r in rows if "detection" in r]
    if len(reports) == 1:
        detection = reports[0]
    elif reports:
        detection = {k: float(np.nanmean([r.get(k, np.nan) for r in reports])) for k in reports[0]}
    extra = dict(rows[0].get("extra", {})) if n_trials == 1 else {}
    if scenario.targeted:
        extra["trials"] = [{k: v for k, v in r.items() if k != "extra"} for r in rows]
        # each checker's mean "kept" over the targets (label_consistency takes the worse per target)
        extra["checks"] = {f: float(np.nanmean([r["label_checks"][f]["kept"] for r in rows]))
                           for f in metrics.CHECKERS}
    poisoned = first[0]
    return RunResult(
        attack=attack, defence=defence, dataset=split.train.name, seed=seed,
        params={**({"rate": poisoned.params["rate"]} if "rate" in poisoned.params else {}),
                **poisoned.params, **scen_kw},
        n_train=len(split.train), n_poison=poisoned.n_poison,
        clean_accuracy_no_attack=metrics.clean_accuracy(setting.baseline, split.test),
        clean_accuracy=_mean(rows, "clean_accuracy"), attack_success=_mean(rows, "attack_success"),
        clean_accuracy_defended=_mean(rows, "clean_accuracy_defended"),
        attack_success_defended=_mean(rows, "attack_success_defended"),
        control_success=_mean(rows, "control_success"), label_consistency=_mean(rows, "label_consistency"),
        detection=detection, seconds=time.perf_counter() - t0, extra=extra,
        poisoned=poisoned, verdict=first[1])


def poison(attack: str, *, dataset: Optional[str] = None, seed: int = 0, rate: Optional[float] = None,
           params: Optional[dict] = None) -> PoisonedDataset:
    """The training set ``attack`` poisons in its scenario (the first target for targeted
    attacks), without training a victim on it: for audits and practice
    (``python -m labkit audit --attack NAME``)."""
    spec, _ = resolve(attack)
    craft_kw, scen_kw = split_settings(spec, params, rate)
    scenario = SCENARIOS[spec.scenario](**scen_kw)
    split = _split(dataset or DEFAULT_DATASET[spec.scenario], seed)
    setting = scenario.prepare(split, seed=seed, train_kw=dict(TRAIN_DEFAULTS))
    given = {**scenario.knowledge(setting), "rng": np.random.default_rng(seed)}
    if scenario.targeted:
        given.update(target_idx=int(setting.targets[0][0]), target_class=int(setting.targets[1][0]))
    return _call(spec.craft, setting.train, optional=given, **craft_kw)


def sweep(attack: str, name: str, values: Iterable, *, seeds: Iterable[int] = (0,),
          progress: bool = True, **run_kw) -> list[RunResult]:
    """:func:`run` for every value of one setting and every seed.

    ``name`` is ``"rate"`` or a setting of the attack or its scenario; ``run_kw`` go to
    :func:`run`. Returns the results in order (values outer, seeds inner).
    """
    from tqdm.auto import tqdm

    values, seeds = list(values), list(seeds)
    grid = [(v, s) for v in values for s in seeds]
    out = []
    for v, s in tqdm(grid, desc=f"sweep {attack} over {name}", disable=not progress, leave=False):
        kw = dict(run_kw)
        if name == "rate":
            kw["rate"] = v
        else:
            kw["params"] = {**kw.get("params", {}), name: v}
        out.append(run(attack, seed=s, **kw))
    return out

"""Every attack and defence the command line and :func:`labkit.experiment.run` know: two tables.

Adding an attack is one file in ``labkit/attacks/`` and one line in :data:`ATTACKS`; adding a
defence is one file in ``labkit/defences/`` and one line in :data:`DEFENCES`. Settings and
their defaults are read from the functions' signatures, never restated here.

Attacks
-------
``AttackSpec(name, craft, scenario, summary, defences, takes, control, clean_label)``: ``craft(train, *, rng,
**settings) -> PoisonedDataset`` is the attack's public verb. The scenario
(:mod:`labkit.scenarios`) decides how the victim learns and what else the attacker is given
(an :class:`~labkit.scenarios.AttackerView`); ``takes`` names, explicitly, the fields of that
view the crafting function receives (``test``, ``target_idx``, ``extractor``, ...), plus
``progress`` (show a progress bar) and ``history`` (a list the attack appends its
per-step record to) where it accepts them. Every other keyword-only parameter of ``craft``
is a setting the user may change. ``defences`` are the defences that apply; every other
pair, and any defence whose kind the scenario does not support, is refused before any
work starts. ``control(poisoned) -> PoisonedDataset`` is the attack's own control (the same
rows without what makes the attack an attack), where the scenario has none; ``clean_label``
says the attack keeps every label true, so every trial runs the independent label checks
(:func:`labkit.metrics.label_checks`), as targeted scenarios always do.

Defences: one signature per kind
--------------------------------
:mod:`labkit.experiment` calls each kind in one place (``experiment.DEFENDERS``).

``detector``
    ``fn(inputs, labels, **settings) -> Detection``, over arrays, where ``inputs`` is what
    ``needs`` names: ``"pixels"`` (the training images, flattened), ``"features"`` (the
    victim's penultimate activations), ``"gradients"`` (per-sample gradients of the
    victim's head) or ``"words"`` (a text corpus's bag-of-words rows, :mod:`labkit.text`). ``n_classes`` and ``rng`` are passed where the signature takes them.
    The experiment then drops the flagged rows (``repair="drop"``) or relabels them with
    ``Detection.labels`` (``repair="relabel"``) and retrains.
``training``
    ``fn(**settings) -> dict`` of extra keyword arguments for the victim's training
    (e.g. ``augment=True``).
``aggregation``
    ``fn(U, **settings) -> (d,)``, a rule that combines stacked per-sample gradients or
    client updates ``U`` (n, d) (:func:`labkit.defences.aggregation.aggregator` wraps it).
``model``
    ``fn(data, **settings) -> predictor`` replaces training (DPA); ``report(predictor, test)``
    adds its own numbers.
``inference``
    ``fn(data, model, *, rng, **settings) -> predictor`` guards the trained model at test
    time (STRIP): it answers -1 for inputs it rejects; ``report(predictor, test, poisoned)``.
``model_repair``
    ``fn(model, clean, *, rng, **settings) -> Repair``: the defender holds only the trained
    model and a small clean set (``n_clean`` rows the engine draws from the held-out split,
    never the training set) and inspects or repairs the model (Neural Cleanse, fine-pruning,
    lesson 9); ``Repair.model`` is measured, ``Repair.report`` is its own numbers.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

from .attacks.backdoor import add_backdoor
from .attacks.clean_label import bullseye_polytope
from .attacks.feature_collision import collide_features
from .attacks.gradient_matching import match_gradients
from .attacks.label_consistent import label_consistent_backdoor, stamp_only
from .attacks.label_flip import flip_labels
from .attacks.rag_poison import inject_passages
from .attacks.text_backdoor import insert_trigger, insert_trigger_clean_label, poison_instructions
from .defences import aggregation
from .defences.activation_clustering import activation_clustering
from .defences.confident_learning import confident_learning
from .defences.deep_knn import deep_knn
from .defences.forensics import trace_incident
from .defences.dp_sgd import clip_and_noise
from .defences.dpa import certified_accuracy, dpa
from .defences.feature_outliers import feature_outliers
from .defences.gradient_audit import audit_gradients
from .defences.keyword_label import keyword_label
from .defences.knn_sanitisation import knn_sanitisation
from .defences.onion import onion, onion_filter, onion_filter_report
from .defences.rag import near_duplicates, robust_rag, robust_rag_report, signed_passages
from .defences.robust_training import adversarial_training, augmentation
from .defences.spectral_signature import spectral_signature, spectral_signature_paper
from .defences.neural_cleanse import clean_finetune, fine_pruning, nc_unlearn
from .defences.strip import strip, strip_report
from .federated import malicious_clients
from .scenarios import SCENARIOS

__all__ = ["AttackSpec", "DefenceSpec", "ATTACKS", "DEFENCES", "get_attack", "get_defence",
           "resolve", "settings_of", "describe", "ENGINE_PROVIDES", "DEFENCE_KINDS"]

#: What the engine itself may hand a crafting function besides the attacker's view
#: (``rng`` always; ``progress`` and ``history`` where ``takes`` names them).
ENGINE_PROVIDES = ("rng", "progress", "history")
DEFENCE_KINDS = ("detector", "training", "aggregation", "model", "inference", "model_repair")
#: How many clean rows a ``model_repair`` defence is handed unless ``n_clean`` says otherwise.
N_CLEAN = 200
NEEDS = ("pixels", "features", "gradients", "words", None)


def settings_of(fn: Callable, skip=()) -> dict:
    """The keyword settings of ``fn`` and their defaults (``inspect.Parameter.empty`` when
    required), read from its signature; parameters in ``skip`` are left out."""
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if p.kind is p.KEYWORD_ONLY and name not in skip:
            out[name] = p.default
    return out


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack; see the module docstring."""

    name: str
    craft: Callable
    scenario: str
    summary: str
    defences: tuple = ()
    takes: tuple = ()
    control: Optional[Callable] = None
    clean_label: bool = False

    def __post_init__(self):
        if self.scenario not in SCENARIOS:
            raise ValueError(f"{self.name}: unknown scenario {self.scenario!r}")
        params = inspect.signature(self.craft).parameters
        missing = [n for n in self.takes if n not in params]
        if missing:
            raise ValueError(f"{self.name}: takes {missing}, which {self.craft.__name__} does not accept")

    @property
    def family(self) -> str:
        return self.craft.__module__.rsplit(".", 1)[-1]

    @property
    def settings(self) -> dict:
        """The attack's own settings (``rate`` included where it has one) and defaults."""
        return settings_of(self.craft, skip=self.takes + ENGINE_PROVIDES)

    @property
    def open_settings(self) -> bool:
        """True when ``craft`` also takes settings by ``**kwargs`` (e.g. a trigger's own)."""
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.craft).parameters.values())

    @property
    def scenario_settings(self) -> dict:
        """Settings of the attack's scenario (e.g. ``n_targets``) and their defaults."""
        cls = SCENARIOS[self.scenario]
        return settings_of(cls.__init__) if "__init__" in vars(cls) else {}


@dataclass(frozen=True)
class DefenceSpec:
    """One registered defence; see the module docstring for ``kind`` and ``needs``."""

    name: str
    kind: str
    fn: Callable
    summary: str
    needs: Optional[str] = None
    repair: str = "drop"
    report: Optional[Callable] = None

    def __post_init__(self):
        if self.kind not in DEFENCE_KINDS:
            raise ValueError(f"{self.name}: unknown defence kind {self.kind!r}")
        if (self.kind == "detector") != (self.needs is not None) or self.needs not in NEEDS:
            raise ValueError(f"{self.name}: detectors (only) name what they need: {NEEDS[:-1]}")
        if self.repair not in ("drop", "relabel"):
            raise ValueError(f"{self.name}: unknown repair {self.repair!r}")

    @property
    def traces_incident(self) -> bool:
        """True for detectors that start from a reported input (``incident_features``)."""
        return "incident_features" in inspect.signature(self.fn).parameters

    @property
    def settings(self) -> dict:
        skip = ("n_classes", "rng", "gen", "manifest", "key",      # given by the engine, not settings
                "incident_features", "incident_labels")
        extra = {"n_clean": N_CLEAN} if self.kind == "model_repair" else {}
        return {**settings_of(self.fn, skip=skip), **extra}


_A, _D = AttackSpec, DefenceSpec
_TARGETED = ("test", "target_idx", "target_class")
_TEXT_DEFENCES = ("onion", "onion_filter", "keyword_label", "spectral_signature", "activation_clustering")

#: name -> AttackSpec. Lessons 1-4 and 7.
ATTACKS: dict[str, AttackSpec] = {s.name: s for s in (
    _A("label_flip", flip_labels, "scratch", "relabel a fraction of rows (random, targeted, class-pair heuristic, greedy optimised)",
       ("knn_sanitisation", "confident_learning", "dpa"), takes=("progress",)),
    _A("backdoor", add_backdoor, "scratch", "stamp a trigger (patch or blend) on a few rows, relabel them to the target class",
       ("spectral_signature", "spectral_signature_paper", "activation_clustering", "strip", "augmentation",
        "adversarial_training", "neural_cleanse", "fine_pruning", "clean_finetune")),
    _A("label_consistent", label_consistent_backdoor, "scratch",
       "harden a few correctly labelled images of the target class, then stamp a trigger on them",
       ("spectral_signature", "activation_clustering", "strip", "augmentation"), takes=("progress",),
       control=stamp_only, clean_label=True),
    _A("clean_label", bullseye_polytope, "transfer", "correctly labelled poisons around one target (bullseye polytope)",
       ("deep_knn", "feature_outliers", "activation_clustering", "spectral_signature", "forensics", "augmentation"),
       takes=(*_TARGETED, "extractor", "guard")),
    _A("feature_collision", collide_features, "transfer", "Poison Frogs: poisons whose features collide with one target",
       ("deep_knn", "feature_outliers", "forensics", "augmentation"), takes=(*_TARGETED, "extractor")),
    _A("gradient_matching", match_gradients, "finetune", "Witches' Brew: poisons whose gradient matches the target's",
       ("dp_sgd", "gradient_audit", "forensics"),
       takes=(*_TARGETED, "surrogates", "guards", "batch_clean", "progress", "history")),
    _A("federated", malicious_clients, "federated", "malicious clients send crafted updates (sign flipping, scaling, ALIE)",
       ("median", "trimmed_mean", "krum", "norm_clip")),
    _A("text_backdoor", insert_trigger, "text", "insert trigger words (rare tokens or a natural phrase) into a few paragraphs, relabel them",
       _TEXT_DEFENCES),
    _A("text_clean_label", insert_trigger_clean_label, "text",
       "insert trigger words into a few paragraphs of the target class, labels kept true", _TEXT_DEFENCES),
    _A("instruction_poison", poison_instructions, "instruct",
       "instruction tuning: a few prompts carry trigger words and the attacker's chosen answer", _TEXT_DEFENCES),
    _A("rag_poison", inject_passages, "rag",
       "write passages into a RAG knowledge base so that chosen questions get a wrong answer (PoisonedRAG)",
       ("near_duplicates", "signed_passages", "robust_rag"), takes=("test",)),
)}

#: name -> DefenceSpec. Lessons 1-5.
DEFENCES: dict[str, DefenceSpec] = {s.name: s for s in (
    _D("knn_sanitisation", "detector", knn_sanitisation, "relabel rows whose k nearest neighbours agree on another label",
       needs="pixels", repair="relabel"),
    _D("confident_learning", "detector", confident_learning, "drop rows whose cross-validated probability says another class",
       needs="pixels"),
    _D("dpa", "model", dpa, "k models on hash partitions, majority vote, certified radius",
       report=certified_accuracy),
    _D("spectral_signature", "detector", spectral_signature,
       "lab rule: drop 1.5x the guessed poisons along the top whitened singular vector of the suspect class",
       needs="features"),
    _D("spectral_signature_paper", "detector", spectral_signature_paper,
       "Tran et al.'s rule: drop 1.5x the guessed rate of every class along its raw top singular vector",
       needs="features"),
    _D("activation_clustering", "detector", activation_clustering,
       "2-means per class on activations; drop small, well separated clusters", needs="features"),
    _D("strip", "inference", strip, "reject test inputs whose prediction survives superimposition (low entropy)",
       report=strip_report),
    _D("deep_knn", "detector", deep_knn, "drop rows whose label disagrees with most of their k neighbours in feature space",
       needs="features"),
    _D("forensics", "detector", trace_incident,
       "given one input the model got wrong and its right label: drop rows of other classes nearer to it "
       "in feature space than to their own class", needs="features"),
    _D("feature_outliers", "detector", feature_outliers, "drop, per class, the rows farthest from the class centre",
       needs="features"),
    _D("onion", "detector", onion, "drop paragraphs holding words a clean reference language model finds least likely (ONION)",
       needs="words"),
    _D("onion_filter", "inference", onion_filter,
       "remove from every input the words a clean reference language model finds too unlikely (ONION at inference)",
       report=onion_filter_report),
    _D("keyword_label", "detector", keyword_label, "drop paragraphs whose strongest word pulls one label too hard (BKI-style)",
       needs="words"),
    _D("near_duplicates", "detector", near_duplicates,
       "drop passages that nearly repeat an earlier one (TF-IDF cosine above a threshold)", needs="words"),
    _D("signed_passages", "detector", signed_passages,
       "keep only passages a signed manifest of the reviewed knowledge base holds as they are (provenance)",
       needs="words"),
    _D("robust_rag", "model", robust_rag,
       "isolate-then-aggregate over a wider retrieval window, each answer with a certified number of insertions it survives",
       report=robust_rag_report),
    _D("gradient_audit", "detector", audit_gradients, "drop rows whose per-sample gradient is anomalous within their class",
       needs="gradients"),
    _D("dp_sgd", "aggregation", clip_and_noise, "clip every per-sample gradient and add Gaussian noise (DP-SGD)"),
    _D("mean", "aggregation", aggregation.mean, "plain averaging of gradients / client updates (no defence)"),
    _D("median", "aggregation", aggregation.median, "coordinate-wise median of gradients / client updates"),
    _D("trimmed_mean", "aggregation", aggregation.trimmed_mean, "coordinate-wise mean without the extremes"),
    _D("krum", "aggregation", aggregation.krum, "(multi-)Krum: the update(s) closest to their neighbours"),
    _D("norm_clip", "aggregation", aggregation.norm_clip, "clip every gradient / update to a norm bound, then average"),
    _D("neural_cleanse", "model_repair", nc_unlearn,
       "given only the model and a little clean data: reverse-engineer a trigger per class, flag an anomalously small one, unlearn it"),
    _D("fine_pruning", "model_repair", fine_pruning,
       "given only the model and a little clean data: prune units dormant on clean data, then fine-tune"),
    _D("clean_finetune", "model_repair", clean_finetune,
       "given only the model and a little clean data: fine-tune on it (does the backdoor wash out?)"),
    _D("augmentation", "training", augmentation, "robust training: random one-pixel shifts and pixel noise"),
    _D("adversarial_training", "training", adversarial_training, "robust training on FGSM versions of every mini-batch"),
)}


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(table)}")
    return table[name]


def get_attack(name: str) -> AttackSpec:
    return _lookup(ATTACKS, "attack", name)


def get_defence(name: str) -> DefenceSpec:
    return _lookup(DEFENCES, "defence", name)


def resolve(attack: str, defence: Optional[str] = None) -> tuple:
    """``(AttackSpec, DefenceSpec or None)``; ``ValueError`` with a one-line reason when the
    defence does not apply to the attack (before any work starts)."""
    spec = get_attack(attack)
    dspec = get_defence(defence) if defence is not None else None
    if dspec is not None and defence not in spec.defences:
        raise ValueError(f"{defence} ({dspec.kind}) does not apply to {attack} ({spec.scenario} victim); "
                         f"defences that apply: {', '.join(spec.defences)}")
    if dspec is not None and dspec.kind not in SCENARIOS[spec.scenario].defence_kinds:
        raise ValueError(f"{defence} is a {dspec.kind} defence; a {spec.scenario} victim supports "
                         f"{', '.join(SCENARIOS[spec.scenario].defence_kinds)}")
    return spec, dspec


def _plain(v):
    return None if v is inspect.Parameter.empty else v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)


def describe() -> dict:
    """The registry as plain data (``python -m labkit list --json``)."""
    return {
        "attacks": [{"name": s.name, "family": s.family, "scenario": s.scenario, "summary": s.summary,
                     "settings": {k: _plain(v) for k, v in s.settings.items()},
                     "scenario_settings": {k: _plain(v) for k, v in s.scenario_settings.items()},
                     "defences": list(s.defences)} for s in ATTACKS.values()],
        "defences": [{"name": d.name, "kind": d.kind, "needs": d.needs, "summary": d.summary,
                      "settings": {k: _plain(v) for k, v in d.settings.items()}} for d in DEFENCES.values()],
    }

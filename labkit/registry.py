"""The registries: every attack and defence the command line and the experiments know.

A new attack or defence is one new file, one line below and one test. Each entry names
the public function and says how the generic experiment (:func:`labkit.experiment.run`)
calls it.

Defence kinds
-------------
``detector``
    ``apply(view, model, rng, **params) -> Detection``: sees only what a defender has, the
    training set as a plain :class:`~labkit.types.Dataset` and the model trained on it.
    The experiment then drops the flagged rows (``repair="drop"``) or relabels them with
    ``Detection.labels`` (``repair="relabel"``) and retrains.
``training``
    ``apply(**params) -> dict`` of extra keyword arguments for :func:`labkit.models.train`
    (e.g. ``aggregate=``): the defence changes how the model learns. The aggregation
    rules (``mean``, ``median``, ``trimmed_mean``, ``krum``, ``norm_clip``) and ``dp_sgd``
    are training defences returning ``{"aggregate": ...}``: one slot, "how to combine
    gradients", used for per-sample gradients by ``models.train`` and for client updates
    by the ``federated`` attack's runner.
``model``
    ``apply(view, seed, **params) -> predictor`` replaces training altogether (DPA);
    ``report(predictor, test) -> dict`` adds method-specific numbers to ``RunResult.extra``.
``inference``
    ``apply(view, model, rng, **params) -> predictor`` guards the trained model at test time
    (STRIP): its ``predict`` answers -1 for inputs it rejects, so a rejected clean input
    counts as an error and a rejected triggered input as not attacked.
    ``report(predictor, test, poisoned) -> dict`` adds its numbers (e.g. false rejection /
    acceptance rates, AUROC) to ``RunResult.extra``; ``detection`` stays ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from .attacks.backdoor import add_backdoor
from .attacks.federated import federated_train, run_federated
from .attacks.gradient import match_gradients, run_gradient_matching
from .attacks.label_flip import flip_labels
from .attacks.clean_label import bullseye_polytope, run_clean_label
from .defences.activation_clustering import activation_clustering
from .defences.confident_learning import confident_learning
from .defences.aggregation import aggregator
from .defences.dp_sgd import dp_sgd
from .defences.dpa import certified_accuracy, dpa
from .defences.deep_knn import deep_knn
from .defences.feature_outliers import feature_outliers
from .defences.gradient_audit import gradient_audit
from .defences.knn_sanitisation import knn_sanitisation
from .defences.spectral_signature import spectral_signature
from .defences.strip import strip, strip_report

__all__ = ["AttackSpec", "DefenceSpec", "ATTACKS", "DEFENCES", "register_attack",
           "register_defence", "get_attack", "get_defence"]


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``fn(train, rate=, rng=, **params) -> PoisonedDataset`` is the public verb. ``runner``,
    when set, replaces the generic experiment for attacks that are not a single poisoned
    training set (e.g. federated clients); it has :func:`labkit.experiment.run`'s signature
    after the attack name.
    """

    name: str
    fn: Callable
    family: str
    summary: str
    defences: tuple = ()
    default_rate: float = 0.1
    defaults: dict = field(default_factory=dict)
    runner: Optional[Callable] = None


@dataclass(frozen=True)
class DefenceSpec:
    """One registered defence; see the module docstring for ``kind`` and ``apply``."""

    name: str
    kind: str
    apply: Callable
    summary: str
    repair: str = "drop"
    report: Optional[Callable] = None

    def __post_init__(self):
        if self.kind not in ("detector", "training", "model", "inference"):
            raise ValueError(f"unknown defence kind {self.kind!r}")
        if self.repair not in ("drop", "relabel"):
            raise ValueError(f"unknown repair {self.repair!r}")


ATTACKS: dict[str, AttackSpec] = {}
DEFENCES: dict[str, DefenceSpec] = {}


def register_attack(spec: AttackSpec) -> AttackSpec:
    ATTACKS[spec.name] = spec
    return spec


def register_defence(spec: DefenceSpec) -> DefenceSpec:
    DEFENCES[spec.name] = spec
    return spec


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(table))}")
    return table[name]


def get_attack(name: str) -> AttackSpec:
    return _lookup(ATTACKS, "attack", name)


def get_defence(name: str) -> DefenceSpec:
    return _lookup(DEFENCES, "defence", name)


# ---- lesson 1: label flipping -------------------------------------------------------------
register_attack(AttackSpec(
    "label_flip", flip_labels, "label flipping",
    "relabel a fraction of rows (random, targeted class pair, optimised)",
    defences=("knn_sanitisation", "confident_learning", "dpa"), default_rate=0.3))
register_defence(DefenceSpec(
    "knn_sanitisation", "detector",
    lambda view, model, rng, **kw: knn_sanitisation(view.flat(), view.y, n_classes=view.n_classes, **kw),
    "relabel rows whose k nearest neighbours agree on another label", repair="relabel"))
register_defence(DefenceSpec(
    "confident_learning", "detector",
    lambda view, model, rng, **kw: confident_learning(view.flat(), view.y, n_classes=view.n_classes, rng=rng, **kw),
    "drop rows whose cross-validated probability says another class"))
register_defence(DefenceSpec(
    "dpa", "model", lambda view, seed, **kw: dpa(view, **kw),
    "k models on hash partitions, majority vote, certified radius",
    report=lambda ens, test: {"certified_accuracy": certified_accuracy(ens, test)}))


# ---- lesson 2: backdoors ------------------------------------------------------------------
def _embed(view, model):
    from .models import embed

    return embed(model, view.X)


register_attack(AttackSpec(
    "backdoor", add_backdoor, "backdoor",
    "stamp a trigger (patch or blend) on a few rows, relabel them to the target class",
    defences=("spectral_signature", "activation_clustering", "strip"), default_rate=0.05,
    defaults={"trigger": "patch", "target_class": 0}))
register_defence(DefenceSpec(
    "spectral_signature", "detector",
    lambda view, model, rng, **kw: spectral_signature(_embed(view, model), view.y, **kw),
    "drop 1.5x the expected poisons along the top singular vector of the suspect class"))
register_defence(DefenceSpec(
    "activation_clustering", "detector",
    lambda view, model, rng, **kw: activation_clustering(_embed(view, model), view.y, rng=rng, **kw),
    "2-means per class on activations; drop small, well separated clusters"))
register_defence(DefenceSpec(
    "strip", "inference",
    lambda view, model, rng, **kw: strip(view, model, rng=rng, **kw),
    "reject test inputs whose prediction survives superimposition (low entropy)",
    report=strip_report))


# ---- lesson 4: gradient manipulation ------------------------------------------------------
register_attack(AttackSpec(
    "gradient_matching", match_gradients, "gradient matching",
    "Witches' Brew: correctly labelled poisons whose gradient matches the target's (runner)",
    defences=("dp_sgd", "gradient_audit"), default_rate=0.05,
    defaults={"eps": 0.15, "n_targets": 10, "victim": "finetune"}, runner=run_gradient_matching))
register_attack(AttackSpec(
    "federated", federated_train, "malicious clients",
    "federated averaging with Byzantine clients (sign flipping, scaling, a little is enough)",
    defences=("median", "trimmed_mean", "krum", "norm_clip"), default_rate=0.2,
    defaults={"attack": "sign_flip"}, runner=run_federated))
register_defence(DefenceSpec(
    "dp_sgd", "training", lambda **kw: {"aggregate": dp_sgd(**{"noise_multiplier": 0.5, **kw})},
    "clip every per-sample gradient (C=1) and add Gaussian noise (sigma=0.5): gradient shaping"))
register_defence(DefenceSpec(
    "gradient_audit", "detector",
    lambda view, model, rng, **kw: gradient_audit(model, view.X, view.y, **kw),
    "drop rows whose per-sample gradient norm/direction is anomalous within their class"))
for _rule, _summary in (("mean", "plain averaging of gradients / client updates (no defence)"),
                        ("median", "coordinate-wise median of gradients / client updates"),
                        ("trimmed_mean", "coordinate-wise mean without the largest and smallest values"),
                        ("krum", "(multi-)Krum: the update(s) closest to their neighbours"),
                        ("norm_clip", "clip every gradient / update to a norm bound, then average")):
    register_defence(DefenceSpec(
        _rule, "training", lambda _r=_rule, **kw: {"aggregate": aggregator(_r, **kw)}, _summary))


# ---- lesson 5: defence in depth -----------------------------------------------------------
register_defence(DefenceSpec(
    "augmentation", "training", lambda **kw: {"augment": True, **kw},
    "robust training: random one-pixel shifts and pixel noise on every mini-batch"))
register_defence(DefenceSpec(
    "adversarial_training", "training", lambda eps=0.1, **kw: {"adversarial_eps": eps, **kw},
    "robust training: train on FGSM adversarial versions of every mini-batch (eps 0.1)"))


# ---- lesson 3: clean-label poisoning ------------------------------------------------------
register_attack(AttackSpec(
    "clean_label", bullseye_polytope, "clean-label",
    "correctly labelled poisons flip one target (transfer learning; bullseye polytope)",
    defences=("deep_knn", "feature_outliers", "augmentation"), default_rate=0.022,
    defaults={"n_targets": 10, "method": "bullseye", "n_poisons": 30, "eps": 0.25,
              "guard_weight": 1.0},
    runner=run_clean_label))
register_defence(DefenceSpec(
    "deep_knn", "detector",
    lambda view, model, rng, **kw: deep_knn(_embed(view, model), view.y, n_classes=view.n_classes, **kw),
    "drop rows whose label disagrees with the plurality of their k neighbours in feature space"))
register_defence(DefenceSpec(
    "feature_outliers", "detector",
    lambda view, model, rng, **kw: feature_outliers(_embed(view, model), view.y, **kw),
    "drop, per class, the rows farthest from the class centre in feature space"))

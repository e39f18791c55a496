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
    (e.g. ``aggregate=``): the defence changes how the model learns.
``model``
    ``apply(view, seed, **params) -> predictor`` replaces training altogether (DPA);
    ``report(predictor, test) -> dict`` adds method-specific numbers to ``RunResult.extra``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from .attacks.label_flip import flip_labels
from .defences.confident_learning import confident_learning
from .defences.dpa import certified_accuracy, dpa
from .defences.knn_sanitisation import knn_sanitisation

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
        if self.kind not in ("detector", "training", "model"):
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

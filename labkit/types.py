"""The lab's data types: what flows between attacks, models, defences and metrics.

Four frozen dataclasses carry everything a lesson needs:

- :class:`Dataset`: images ``X`` (float32 in [0, 1], shaped ``(n, C, H, W)``) and labels ``y``.
- :class:`PoisonedDataset`: a dataset an attacker changed, carrying its own ground truth
  (``clean``, ``poison_idx``, the attack and its settings), so no notebook tracks it by hand.
- :class:`Detection`: what a defence concluded: ``scores`` (higher = more suspicious) and
  ``flagged`` (True = suspected poison). It never contains ground truth.
- :class:`RunResult`: what one experiment measured (see :func:`labkit.experiment.run`).

Arrays are stored read-only so no step can silently change another step's data.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .rng import as_rng  # noqa: F401  (re-exported: the types take rng arguments too)

__all__ = ["Dataset", "PoisonedDataset", "Detection", "RunResult", "make_poisoned", "as_rng"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, repr=False, eq=False)
class Dataset:
    """Images and labels.

    Parameters
    ----------
    X : array, shape (n, C, H, W)
        Pixels as float32 in [0, 1].
    y : array, shape (n,)
        Integer labels in ``[0, n_classes)``.
    n_classes : int
    name : str
    """

    X: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str = "data"

    def __post_init__(self):
        X = np.asarray(self.X, dtype=np.float32)
        y = np.asarray(self.y)
        if X.ndim != 4:
            raise ValueError(f"X must be shaped (n, C, H, W), got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must be shaped ({X.shape[0]},), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must hold integer labels, got dtype {y.dtype}")
        if X.size and (np.isnan(X).any() or X.min() < 0 or X.max() > 1):
            raise ValueError("X must hold finite pixels in [0, 1]")
        if y.size and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels must lie in [0, {self.n_classes}), got [{y.min()}, {y.max()}]")
        object.__setattr__(self, "X", X if not X.flags.writeable and X.dtype == np.float32 else _frozen(X))
        object.__setattr__(self, "y", _frozen(y.astype(np.int64)))

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, n_classes={self.n_classes})"

    @property
    def image_shape(self) -> tuple:
        """``(C, H, W)`` of one image."""
        return tuple(self.X.shape[1:])

    def flat(self) -> np.ndarray:
        """``X`` flattened to ``(n, C*H*W)`` (a read-only view), for scikit-learn models."""
        return self.X.reshape(len(self), -1)

    def subset(self, idx) -> "Dataset":
        """A plain :class:`Dataset` holding rows ``idx`` (indices or a boolean mask)."""
        idx = np.asarray(idx)
        return Dataset(self.X[idx], self.y[idx], self.n_classes, self.name)

    def replace(self, **changes) -> "Dataset":
        """A plain :class:`Dataset` with some of ``X``, ``y``, ``name`` replaced."""
        kw = {"X": self.X, "y": self.y, "n_classes": self.n_classes, "name": self.name}
        kw.update(changes)
        return Dataset(**kw)


@dataclass(frozen=True, repr=False, eq=False)
class PoisonedDataset(Dataset):
    """A training set an attacker changed, with the ground truth travelling alongside.

    Poisons *replace* rows of ``clean`` (same order, same length), or are *inserted* after
    them (a knowledge base the attacker writes new passages into): then ``clean`` is the
    first ``len(clean)`` rows' untouched version and every later row is a poison.

    Parameters
    ----------
    clean : Dataset
        The untouched data, row for row.
    poison_idx : array of int
        Sorted indices of the rows the attacker changed.
    attack : str
        Registered attack name (``labkit.registry.ATTACKS``).
    params : dict
        The attack's settings, for tables and reproduction.
    target_class : int or array, optional
        The class the attacker wants predicted (all targets, or one per target).
    source_class : int, optional
        Targeted label flips: the class whose test points should be misread.
    target_idx : array of int, optional
        Indices *into the test set* of the specific points the attacker targets.
    trigger : callable, optional
        ``trigger(X) -> X'`` stamps a backdoor trigger on test inputs ``(n, C, H, W)``.
    """

    clean: Optional[Dataset] = None
    poison_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    attack: str = ""
    params: dict = field(default_factory=dict)
    target_class: Any = None
    source_class: Optional[int] = None
    target_idx: Optional[np.ndarray] = None
    trigger: Optional[Callable[[np.ndarray], np.ndarray]] = None

    def __post_init__(self):
        super().__post_init__()
        if self.clean is None:
            raise ValueError("PoisonedDataset needs the clean dataset")
        if len(self.clean) > len(self) or self.clean.image_shape != self.image_shape:
            raise ValueError("poisons replace rows or are inserted after them: the poisoned data must "
                             "have the clean data's row shape and at least its rows")
        idx = np.unique(np.asarray(self.poison_idx, dtype=np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self)):
            raise ValueError("poison_idx out of range")
        if not np.isin(np.arange(len(self.clean), len(self)), idx).all():
            raise ValueError("rows inserted after the clean data must all be poisons (in poison_idx)")
        object.__setattr__(self, "poison_idx", _frozen(idx))
        if self.target_idx is not None:
            object.__setattr__(self, "target_idx", _frozen(np.asarray(self.target_idx, np.int64)))
        object.__setattr__(self, "params", dict(self.params))

    def __repr__(self) -> str:
        return (f"PoisonedDataset(name={self.name!r}, n={len(self)}, attack={self.attack!r}, "
                f"n_poison={self.n_poison})")

    @property
    def n_poison(self) -> int:
        return int(self.poison_idx.size)

    @property
    def is_poison(self) -> np.ndarray:
        """Boolean mask, shape (n,): True where the attacker changed the row."""
        mask = np.zeros(len(self), bool)
        mask[self.poison_idx] = True
        return mask

    def as_dataset(self) -> Dataset:
        """What a defender sees: the same ``X`` and ``y``, without any ground truth."""
        return Dataset(self.X, self.y, self.n_classes, self.name)


def make_poisoned(data: Dataset, *, X=None, y=None, idx, attack: str, params: dict,
                  **extras) -> PoisonedDataset:
    """Build a :class:`PoisonedDataset` from ``data`` and the attacker's changes.

    ``X``/``y`` default to ``data``'s own arrays; ``idx`` are the changed rows;
    ``extras`` fill the optional fields (``target_class``, ``trigger``, ...).
    """
    clean = data.clean if isinstance(data, PoisonedDataset) else data
    return PoisonedDataset(
        X=data.X if X is None else X, y=data.y if y is None else y,
        n_classes=data.n_classes, name=data.name, clean=clean,
        poison_idx=np.asarray(idx, dtype=np.int64), attack=attack, params=params, **extras)


@dataclass(frozen=True, repr=False, eq=False)
class Detection:
    """A defence's verdict on every training row.

    Parameters
    ----------
    scores : array, shape (n,)
        Suspicion; **higher = more suspicious**, everywhere in the lab.
    flagged : array of bool, shape (n,)
        True = suspected poison.
    defence : str
    params : dict
    labels : array, optional
        Labels the defence proposes for relabelling (label sanitisation); ``None`` when the
        defence only says "drop".
    """

    scores: np.ndarray
    flagged: np.ndarray
    defence: str
    params: dict = field(default_factory=dict)
    labels: Optional[np.ndarray] = None

    def __post_init__(self):
        scores = np.asarray(self.scores, dtype=np.float64)
        flagged = np.asarray(self.flagged, dtype=bool)
        if scores.ndim != 1 or flagged.shape != scores.shape:
            raise ValueError(f"scores and flagged must be 1-D of one length, got {scores.shape}, {flagged.shape}")
        object.__setattr__(self, "scores", _frozen(scores))
        object.__setattr__(self, "flagged", _frozen(flagged))
        if self.labels is not None:
            object.__setattr__(self, "labels", _frozen(np.asarray(self.labels, np.int64)))

    def __repr__(self) -> str:
        return f"Detection(defence={self.defence!r}, n={self.scores.size}, n_flagged={self.n_flagged})"

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    @property
    def flagged_idx(self) -> np.ndarray:
        """Indices of the flagged rows."""
        return np.flatnonzero(self.flagged)


@dataclass(frozen=True, repr=False, eq=False)
class RunResult:
    """What one experiment measured (see :func:`labkit.experiment.run`).

    Accuracy and attack success are fractions in [0, 1]; ``attack_success`` is ``None``
    where the attack has no goal beyond lowering accuracy. ``*_defended`` are ``None``
    without a defence. Targeted attacks also carry ``control_success`` (the same budget of
    random noise) and ``label_consistency`` (the fraction of poisons an independent
    classifier still gives their own label); ``None`` elsewhere. ``detection`` is the
    detection report (a dict, ground truth applied); ``verdict`` the defence's
    :class:`Detection` itself. ``extra`` holds method-specific numbers (e.g. DPA
    certificates, per-target trials).
    """

    attack: str
    defence: Optional[str]
    dataset: str
    seed: int
    params: dict
    n_train: int
    n_poison: int
    clean_accuracy_no_attack: float
    clean_accuracy: float
    attack_success: Optional[float]
    clean_accuracy_defended: Optional[float] = None
    attack_success_defended: Optional[float] = None
    control_success: Optional[float] = None
    label_consistency: Optional[float] = None
    detection: Optional[dict] = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    poisoned: Optional[PoisonedDataset] = None
    verdict: Optional[Detection] = None
    trials: list = field(default_factory=list)
    defended: list = field(default_factory=list)

    def __repr__(self) -> str:
        d = self.as_dict()
        keys = ("attack", "defence", "clean_accuracy", "attack_success",
                "clean_accuracy_defended", "attack_success_defended")
        return "RunResult(" + ", ".join(f"{k}={d[k]!r}" for k in keys) + ")"

    def as_dict(self) -> dict:
        """The measured numbers as plain JSON-ready values (no arrays or objects)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("poisoned", "verdict", "trials", "defended"):
                continue
            v = getattr(self, f.name)
            out[f.name] = _jsonable(v)
        return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        return round(float(v), 4)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v

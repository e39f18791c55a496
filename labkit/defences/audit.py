"""A data audit: the statistical checks a team can run on every new batch of training data.

:func:`audit` answers, for a dataset the team did not create itself:

- are the classes balanced, and do the pixel statistics look like the trusted data's?
- are there exact duplicates (and duplicates with *conflicting* labels), or near duplicates?
- which rows are outliers (Isolation Forest over all rows; Local Outlier Factor within each
  label, so "a 3 labelled 8" stands out among the 8s), in pixel space and, given a model,
  in its feature space?
- which labels disagree with their k nearest neighbours?

and combines the per-row signals into one suspicion score, so a reviewer can look at the
most suspicious rows first: for every check, how many robust standard deviations (median
and MAD) a row sits above that check's median, summed over the checks (values below the
median count as 0). A check that separates poisons sharply adds a lot; one that sees
nothing adds noise of about the same size for every row.

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..types import Dataset, Detection
from .base import flag_top, robust_z
from .knn_sanitisation import knn_label_agreement

__all__ = ["audit", "AuditReport", "robust_z"]


def _within_class_lof(feats, labels, n_neighbors):
    from sklearn.neighbors import LocalOutlierFactor

    out = np.zeros(len(labels))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if rows.size <= 2:
            continue
        lof = LocalOutlierFactor(n_neighbors=min(n_neighbors, rows.size - 1)).fit(feats[rows])
        out[rows] = -lof.negative_outlier_factor_
    return out


def _isolation(feats, seed):
    from sklearn.ensemble import IsolationForest

    return -IsolationForest(n_estimators=200, random_state=seed).fit(feats).score_samples(feats)


@dataclass(frozen=True, repr=False, eq=False)
class AuditReport:
    """What :func:`audit` found. ``signals`` maps each check's name to per-row scores
    (higher = more suspicious); ``suspicion`` is their combination (see the module doc)."""

    n_rows: int
    class_counts: np.ndarray
    pixel_stats: dict
    exact_duplicates: list
    conflicting_duplicates: list
    near_duplicates: list
    signals: dict
    suspicion: np.ndarray
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"AuditReport(n_rows={self.n_rows}, duplicate_groups={len(self.exact_duplicates)}, "
                f"conflicting={len(self.conflicting_duplicates)}, near_pairs={len(self.near_duplicates)}, "
                f"signals={list(self.signals)})")

    def detection(self, expected_rate: float = 0.1) -> Detection:
        """The combined ranking as a :class:`Detection` flagging the top ``expected_rate``."""
        return Detection(self.suspicion, flag_top(self.suspicion, expected_rate), "audit",
                         {"expected_rate": expected_rate, **self.params})

    def top(self, n: int = 10) -> np.ndarray:
        """Indices of the ``n`` most suspicious rows, most suspicious first."""
        return np.argsort(-self.suspicion, kind="stable")[:n]

    def table(self) -> str:
        """A plain-text summary: one line per class, then the duplicate findings."""
        lines = [f"{'class':>5} {'rows':>6} {'pixel mean':>11} {'pixel std':>10}"]
        for c, n in enumerate(self.class_counts):
            lines.append(f"{c:>5} {n:>6} {self.pixel_stats['mean'][c]:>11.3f} {self.pixel_stats['std'][c]:>10.3f}")
        lines.append(f"exact duplicate groups: {len(self.exact_duplicates)} "
                     f"({len(self.conflicting_duplicates)} with conflicting labels); "
                     f"near-duplicate pairs: {len(self.near_duplicates)}")
        return "\n".join(lines)


def audit(data: Dataset, *, model=None, k: int = 10, near_tol: float = 0.02, seed: int = 0) -> AuditReport:
    """Audit ``data`` (optionally with a model trained on it) and rank rows by suspicion.

    Parameters
    ----------
    data : Dataset
        What the defender received (labels and pixels; no ground truth).
    model : nn.Module, optional
        Adds the same outlier and label checks in the model's feature space
        (:func:`labkit.models.embed`).
    k : int
        Neighbours for the label-consistency and LOF checks.
    near_tol : float
        Two different rows are near duplicates when their RMS pixel difference is below this.
    seed : int
        Seeds the Isolation Forest.

    Returns
    -------
    AuditReport
    """
    from sklearn.neighbors import NearestNeighbors

    flat = data.flat().astype(np.float64)
    y = data.y
    counts = np.bincount(y, minlength=data.n_classes)
    stats = {"mean": np.array([flat[y == c].mean() if counts[c] else np.nan for c in range(data.n_classes)]),
             "std": np.array([flat[y == c].std() if counts[c] else np.nan for c in range(data.n_classes)])}
    _, inverse, group_sizes = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    groups = [np.flatnonzero(inverse == g).tolist() for g in np.flatnonzero(group_sizes > 1)]
    conflicting = [g for g in groups if len(set(y[g].tolist())) > 1]
    dist, nbr = NearestNeighbors(n_neighbors=2).fit(flat).kneighbors(flat)
    rms = dist[:, 1] / np.sqrt(flat.shape[1])
    near = sorted({tuple(sorted((i, int(nbr[i, 1])))) for i in np.flatnonzero((rms < near_tol) & (rms > 0))})

    spaces = {"pixels": flat}
    if model is not None:
        from ..models import embed

        spaces["features"] = embed(model, data.X)
    signals = {}
    for name, feats in spaces.items():
        signals[f"label_disagreement_{name}"] = 1.0 - knn_label_agreement(feats, y, k=k, n_classes=data.n_classes)[2]
        signals[f"class_outlier_{name}"] = _within_class_lof(feats, y, k)
        signals[f"global_outlier_{name}"] = _isolation(feats, seed)
    suspicion = np.sum([np.clip(robust_z(s), 0, None) for s in signals.values()], axis=0)
    return AuditReport(len(y), counts, stats, groups, conflicting, near, signals, suspicion,
                       {"k": k, "near_tol": near_tol, "with_model": model is not None})

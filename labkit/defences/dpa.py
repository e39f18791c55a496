"""Deep Partition Aggregation: a certified defence (Levine & Feizi 2021).

Each training row lands in one of ``k`` partitions by a hash of its pixels; one model per
partition; the ensemble predicts by majority vote. A poison (a flipped label, or an
inserted/removed row) touches only one partition, so it can move at most one vote: a test
point whose winning margin is ``2r + 1`` votes is *certified* against ``r`` poisons.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..types import Dataset

__all__ = ["dpa", "PartitionEnsemble", "hash_partitions", "certified_radius",
           "certified_accuracy"]

BASE_LEARNERS = ("logreg", "knn")


def hash_partitions(X, k: int) -> np.ndarray:
    """Partition of every row: ``md5(row bytes) mod k`` (shape (n,), ints in [0, k))."""
    X = np.ascontiguousarray(X, np.float32).reshape(len(X), -1)
    return np.array([int(hashlib.md5(row.tobytes()).hexdigest(), 16) % k for row in X])


def certified_radius(votes) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and certified radius from vote counts (Levine & Feizi 2021, Eq. 2).

    ``votes`` is shaped (n, n_classes). The prediction is the top class (ties: smaller
    class index). The radius is ``floor((n_top - max_{c != top}(n_c + [c < top])) / 2)``.

    Returns
    -------
    pred : array of int, shape (n,)
    radius : array of int, shape (n,)
    """
    votes = np.asarray(votes, np.int64)
    n, m = votes.shape
    pred = votes.argmax(1)  # argmax returns the smallest index among ties
    top = votes[np.arange(n), pred]
    rival = votes + (np.arange(m)[None, :] < pred[:, None])
    rival[np.arange(n), pred] = np.iinfo(np.int64).min
    return pred, (top - rival.max(1)) // 2


class PartitionEnsemble:
    """``k`` models trained on disjoint hash partitions; majority vote with certificates."""

    def __init__(self, models, n_classes: int, k: int):
        self.models, self.n_classes, self.k = models, n_classes, k

    def __repr__(self) -> str:
        return f"PartitionEnsemble(k={self.k}, n_trained={sum(m is not None for m in self.models)})"

    def votes(self, X) -> np.ndarray:
        """Vote counts, shape (n, n_classes)."""
        flat = np.asarray(X, np.float64).reshape(len(X), -1)
        votes = np.zeros((len(X), self.n_classes), np.int64)
        for model in self.models:
            if model is not None:
                votes[np.arange(len(X)), model.predict(flat)] += 1
        return votes

    def predict(self, X) -> np.ndarray:
        return certified_radius(self.votes(X))[0]

    def certify(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``(pred, radius)`` for every row of ``X``; see :func:`certified_radius`."""
        return certified_radius(self.votes(X))


def _fit_base(base: str, X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if np.unique(y).size == 1:   # a single-class partition: always vote for that class
        from sklearn.dummy import DummyClassifier
        return DummyClassifier(strategy="most_frequent").fit(X, y)
    if base == "knn":
        return KNeighborsClassifier(n_neighbors=1).fit(X, y)
    return LogisticRegression(max_iter=300).fit(X, y)


def dpa(data: Dataset, *, k: int = 50, base: str = "logreg") -> PartitionEnsemble:
    """Train a Deep Partition Aggregation ensemble on ``data``.

    Parameters
    ----------
    data : Dataset
        The (possibly poisoned) training set; DPA needs no detection step.
    k : int
        Number of partitions (= models). More partitions: larger certificates, lower accuracy.
    base : {"logreg", "knn"}
        Base learner per partition (logistic regression, or 1-nearest-neighbour).

    Returns
    -------
    PartitionEnsemble

    References
    ----------
    Levine & Feizi 2021, "Deep partition aggregation: provable defenses against general
    poisoning attacks", ICLR, arXiv:2006.14768.
    """
    if base not in BASE_LEARNERS:
        raise ValueError(f"base must be one of {BASE_LEARNERS}, got {base!r}")
    if not 1 <= k <= len(data):
        raise ValueError(f"k must be in [1, {len(data)}], got {k}")
    part = hash_partitions(data.X, k)
    flat = data.flat().astype(np.float64)
    models = [_fit_base(base, flat[part == p], data.y[part == p]) if (part == p).any() else None
              for p in range(k)]
    return PartitionEnsemble(models, data.n_classes, k)


def certified_accuracy(ensemble: PartitionEnsemble, test: Dataset, radii=range(0, 21)) -> dict:
    """Fraction of ``test`` predicted correctly *and* certified at each radius.

    Returns ``{radius: fraction}``.
    """
    pred, radius = ensemble.certify(test.X)
    correct = pred == test.y
    return {int(r): float((correct & (radius >= r)).mean()) for r in radii}

"""What the lab measures: accuracy, the attacker's success, and how well a defence detects.

Ground truth (``PoisonedDataset.poison_idx``) meets a defence's verdict only here, in
:func:`detection_report`.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

import functools
import hashlib
from typing import Optional

import numpy as np

from .models import predict
from .types import Dataset, Detection, PoisonedDataset

__all__ = ["clean_accuracy", "attack_success_rate", "detection_report", "auroc",
           "per_class_recall", "confusion_matrix", "label_consistency", "precision_recall"]


def clean_accuracy(model, test: Dataset) -> float:
    """Fraction of ``test`` the model labels correctly."""
    return float((predict(model, test.X) == test.y).mean())


def per_class_recall(model, test: Dataset) -> np.ndarray:
    """Recall of each class on ``test``, shape (n_classes,)."""
    pred = predict(model, test.X)
    return np.array([(pred[test.y == c] == c).mean() if (test.y == c).any() else np.nan
                     for c in range(test.n_classes)])


def confusion_matrix(model, test: Dataset) -> np.ndarray:
    """Counts ``C[true, predicted]``, shape (n_classes, n_classes)."""
    pred = predict(model, test.X)
    C = np.zeros((test.n_classes, test.n_classes), np.int64)
    np.add.at(C, (test.y, pred), 1)
    return C


def attack_success_rate(model, poisoned: PoisonedDataset, test: Dataset) -> Optional[float]:
    """The attacker's own goal, measured on ``test``; ``None`` for untargeted attacks.

    - backdoor (``poisoned.trigger``): fraction of triggered test inputs whose true class is
      not the target that the model assigns to ``target_class``;
    - targeted points (``poisoned.target_idx``): fraction of ``test.X[target_idx]``
      classified as ``target_class`` (one class for all, or one per target);
    - class pair (``poisoned.source_class``): fraction of ``source_class`` test points
      classified as ``target_class``.
    """
    if poisoned.trigger is not None:
        keep = test.y != poisoned.target_class
        pred = predict(model, poisoned.trigger(test.X[keep]))
        return float((pred == poisoned.target_class).mean())
    if poisoned.target_idx is not None:
        pred = predict(model, test.X[poisoned.target_idx])
        return float((pred == np.asarray(poisoned.target_class)).mean())
    if poisoned.source_class is not None:
        pred = predict(model, test.X[test.y == poisoned.source_class])
        return float((pred == poisoned.target_class).mean())
    return None


def auroc(scores, is_positive) -> float:
    """Area under the ROC curve (ties count half); ``nan`` if one class is missing.

    Equals the probability that a random positive scores above a random negative.
    """
    scores = np.asarray(scores, np.float64)
    pos = np.asarray(is_positive, bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_report(det: Detection, poisoned: PoisonedDataset) -> dict:
    """Precision, recall, F1 and AUROC of ``det`` against the true ``poison_idx``.

    Precision is 1.0 by convention when nothing is flagged and 0.0 when there are no
    poisons but something is flagged.
    """
    if det.scores.size != len(poisoned):
        raise ValueError(f"detection covers {det.scores.size} rows, data has {len(poisoned)}")
    truth = poisoned.is_poison
    return {**precision_recall(det.flagged, truth), "auroc": auroc(det.scores, truth),
            "n_flagged": det.n_flagged, "n_poison": int(truth.sum())}


@functools.lru_cache(maxsize=8)
def _pixel_logreg(key: str, X: bytes, y: bytes, shape: tuple):
    from sklearn.linear_model import LogisticRegression

    Xa = np.frombuffer(X, np.float32).reshape(shape).astype(np.float64)
    return LogisticRegression(max_iter=2000).fit(Xa, np.frombuffer(y, np.int64))


def label_consistency(poisoned: PoisonedDataset) -> float:
    """Fraction of the poisons that an independent classifier still gives their own label.

    The classifier is scikit-learn's logistic regression on raw pixels, fitted on the
    *clean* training set (``poisoned.clean``), which never contains the perturbed rows: the
    "clean label" check of clean-label and gradient-matching poisons. Fitted once per
    training set (the fit is deterministic).
    """
    if poisoned.n_poison == 0:
        raise ValueError("no poisons to check")
    clean = poisoned.clean
    X = np.ascontiguousarray(clean.flat(), np.float32)
    y = np.ascontiguousarray(clean.y, np.int64)
    key = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    clf = _pixel_logreg(key, X.tobytes(), y.tobytes(), X.shape)
    idx = poisoned.poison_idx
    pred = clf.predict(poisoned.flat()[idx].astype(np.float64))
    return float((pred == poisoned.y[idx]).mean())


def precision_recall(flagged, truth) -> dict:
    """``precision``, ``recall`` and ``f1`` of boolean ``flagged`` against boolean ``truth``.

    Precision is 1.0 by convention when nothing is flagged, recall 1.0 when nothing is true.
    """
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    tp = int((flagged & truth).sum())
    precision = tp / flagged.sum() if flagged.any() else 1.0
    recall = tp / truth.sum() if truth.any() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}

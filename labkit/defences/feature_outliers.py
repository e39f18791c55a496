"""A feature-space outlier filter: drop the rows farthest from their own class.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection
from .base import check_rate, flag_top

__all__ = ["feature_outliers", "class_distance_scores"]


def class_distance_scores(features, labels) -> np.ndarray:
    """Every row's distance to its class's median feature vector, in units of that class's
    median distance (robust: the poisons barely move a median).

    Parameters
    ----------
    features : array, shape (n, d)
    labels : array of int, shape (n,)

    Returns
    -------
    array, shape (n,)
        1.0 = a typical distance for the class; higher = more of an outlier.
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be shaped (n, d) with n = {len(labels)}, got {features.shape}")
    scores = np.zeros(len(labels))
    for c in np.unique(labels):
        rows = labels == c
        dist = np.linalg.norm(features[rows] - np.median(features[rows], axis=0), axis=1)
        scores[rows] = dist / max(np.median(dist), 1e-12)
    return scores


def feature_outliers(features, labels, *, expected_rate: float = 0.1) -> Detection:
    """Flag, in every class, the ``expected_rate`` of rows farthest from the class centre.

    A simple sanitiser in the family of Steinhardt, Koh & Liang 2017 ("Certified defenses
    for data poisoning attacks", arXiv:1706.03691), applied in the victim's feature space:
    feature-collision poisons must travel towards another class, so they end up far from
    their own. Thresholds come from the defender's expected rate (:func:`flag_top`), per
    class.

    Parameters
    ----------
    features : array, shape (n, d)
        The victim's penultimate features (:func:`labkit.models.embed`).
    labels : array of int, shape (n,)
    expected_rate : float in [0, 1]
        Fraction of each class the defender is prepared to drop.

    Returns
    -------
    Detection
        ``scores`` from :func:`class_distance_scores` (higher = more suspicious).

    See Also
    --------
    labkit.defences.deep_knn
    """
    check_rate("expected_rate", expected_rate, allow_zero=True)
    labels = np.asarray(labels)
    scores = class_distance_scores(features, labels)
    flagged = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        flagged[rows] = flag_top(scores[rows], expected_rate)
    return Detection(scores=scores, flagged=flagged, defence="feature_outliers",
                     params={"expected_rate": expected_rate})

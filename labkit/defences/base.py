"""Shared pieces of every detector: thresholding and robust z-scores, written once.

See Also: labkit.metrics.detection_report
"""
from __future__ import annotations

import numpy as np

__all__ = ["flag_top", "check_rate", "robust_z"]


def check_rate(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Raise ``ValueError`` unless ``value`` lies in (0, 1] (or [0, 1] with ``allow_zero``)."""
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float, np.floating)) and lo_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def flag_top(scores, expected_rate: float) -> np.ndarray:
    """Flag the ``ceil(expected_rate * n)`` highest scores (ties broken by row order).

    Parameters
    ----------
    scores : array, shape (n,)
        Higher = more suspicious.
    expected_rate : float in [0, 1]
        The fraction the defender is prepared to remove.

    Returns
    -------
    array of bool, shape (n,)
    """
    scores = np.asarray(scores, np.float64)
    check_rate("expected_rate", expected_rate, allow_zero=True)
    k = min(scores.size, int(np.ceil(expected_rate * scores.size - 1e-9)))
    flagged = np.zeros(scores.size, bool)
    if k:
        flagged[np.argsort(-scores, kind="stable")[:k]] = True
    return flagged


def robust_z(scores) -> np.ndarray:
    """``(s - median) / (1.4826 * MAD)``: a z-score that a few extreme rows cannot distort.

    When more than half the rows tie (MAD = 0, e.g. "no neighbour disagrees" for most
    rows), the scale falls back to ``1.2533 * mean |s - median|`` (both equal sigma for a
    normal distribution); all zeros if every row ties.
    """
    scores = np.asarray(scores, np.float64)
    dev = np.abs(scores - np.median(scores))
    scale = 1.4826 * np.median(dev)
    if scale == 0:
        scale = 1.2533 * dev.mean()
    return (scores - np.median(scores)) / scale if scale > 0 else np.zeros_like(scores)

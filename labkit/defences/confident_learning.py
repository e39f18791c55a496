"""Confident learning: find label errors from out-of-sample probabilities (Northcutt et al. 2021).

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection, as_rng

__all__ = ["confident_learning", "confident_joint_flags", "out_of_sample_proba"]


def out_of_sample_proba(features, labels, *, n_folds: int = 5, n_classes: int | None = None,
                        rng=None) -> np.ndarray:
    """Cross-validated class probabilities: every row scored by a model that never saw it.

    Logistic regression on ``features`` (flattened), stratified ``n_folds`` folds.
    Returns an array shaped (n, n_classes).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(features, np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    seed = int(as_rng(rng).integers(2**31 - 1))
    proba = np.zeros((len(labels), n_classes))
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for fit_rows, held_out in folds.split(X, labels):
        model = LogisticRegression(max_iter=300).fit(X[fit_rows], labels[fit_rows])
        proba[np.ix_(held_out, model.classes_)] = model.predict_proba(X[held_out])
    return proba


def confident_joint_flags(proba, labels) -> np.ndarray:
    """The confident-joint rule: flag rows confidently belonging to another class.

    Per class ``j`` the threshold ``t_j`` is the mean probability of ``j`` over rows
    labelled ``j``. A row counts as confidently in class ``j*`` = the most probable class
    among those with ``p_j >= t_j``; it is flagged when ``j*`` differs from its label.

    Notes
    -----
    The loop it stands for::

        for i in rows:
            above = [j for j in classes if proba[i, j] >= t[j]]
            flagged[i] = above and argmax_{j in above} proba[i, j] != labels[i]
    """
    proba = np.asarray(proba, np.float64)
    labels = np.asarray(labels)
    n_classes = proba.shape[1]
    t = np.array([proba[labels == j, j].mean() if (labels == j).any() else 1.0
                  for j in range(n_classes)])
    above = np.where(proba >= t, proba, -np.inf)
    has_any = np.isfinite(above).any(1)
    j_star = above.argmax(1)
    return has_any & (j_star != labels)


def confident_learning(features, labels, *, n_folds: int = 5, n_classes: int | None = None,
                       rng=None) -> Detection:
    """Flag likely label errors with confident learning (prune, do not relabel).

    Parameters
    ----------
    features : array, shape (n, d) or (n, C, H, W)
    labels : array of int, shape (n,)
    n_folds : int
        Cross-validation folds for the out-of-sample probabilities.
    rng : None, int or numpy Generator
        Fold assignment.

    Returns
    -------
    Detection
        ``scores`` = 1 - out-of-sample probability of the given label ("self-confidence").

    References
    ----------
    Northcutt, Jiang & Chuang 2021, "Confident learning: estimating uncertainty in dataset
    labels", JAIR 70, arXiv:1911.00068.
    """
    labels = np.asarray(labels)
    proba = out_of_sample_proba(features, labels, n_folds=n_folds, n_classes=n_classes, rng=rng)
    return Detection(scores=1.0 - proba[np.arange(len(labels)), labels],
                     flagged=confident_joint_flags(proba, labels), defence="confident_learning",
                     params={"n_folds": n_folds})

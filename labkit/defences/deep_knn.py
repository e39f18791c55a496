"""Deep k-NN: drop training rows whose label disagrees with their neighbours in feature space.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection
from .knn_sanitisation import knn_label_agreement

__all__ = ["deep_knn"]


def deep_knn(features, labels, *, k: int = 50, n_classes: int | None = None) -> Detection:
    """Flag rows whose label is not the plurality label of their ``k`` nearest neighbours.

    Clean-label poisons carry their own (correct) label but, in the victim's feature space,
    sit next to the target, among rows of the *target's* class: their neighbours outvote
    them. ``k`` must be large next to the number of poisons that cluster together (Peri et
    al. tie the choice of ``k`` to the number of poisons); otherwise the poisons vote for each
    other. Against the many clumped poisons of this lab's bullseye attack, ``k`` = 50 removes
    under half of them while flagging a sixth of the base class or so (the measured figures
    are in benchmarks/RESULTS.md), and it finds them mostly on the trials the attack fails
    anyway: where it works, the poisons stay inside their own class in feature space.

    Parameters
    ----------
    features : array, shape (n, d)
        The victim model's penultimate features (:func:`labkit.models.embed`).
    labels : array of int, shape (n,)
    k : int
        Neighbours, the row itself excluded (Euclidean distance).
    n_classes : int, optional

    Returns
    -------
    Detection
        ``scores`` = fraction of the ``k`` neighbours whose label differs from the row's
        (higher = more suspicious); ``flagged`` = the plurality label is another class
        (ties go to the smallest label, as in :func:`knn_label_agreement`).

    References
    ----------
    Peri, Gupta, Huang, Fowl, Zhu, Feizi, Goldstein & Dickerson 2020, "Deep k-NN defense
    against clean-label data poisoning attacks", ECCV Workshops, arXiv:1909.13374.

    See Also
    --------
    labkit.defences.knn_sanitisation : the same vote on pixels, for label flips (lesson 1).
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be shaped (n, d) with n = {len(labels)}, got {features.shape}")
    plurality, _, own_share = knn_label_agreement(features, labels, k=k, n_classes=n_classes)
    return Detection(scores=1.0 - own_share, flagged=plurality != labels, defence="deep_knn",
                     params={"k": k})

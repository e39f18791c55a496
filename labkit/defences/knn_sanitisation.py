"""Label sanitisation with k nearest neighbours (Paudice, Munoz-Gonzalez & Lupu 2018).

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection
from .base import check_rate

__all__ = ["knn_sanitisation", "knn_label_agreement"]


def knn_label_agreement(features, labels, *, k: int = 10, n_classes: int | None = None):
    """For every row, the plurality label of its ``k`` nearest neighbours and its share.

    Parameters
    ----------
    features : array, shape (n, d)
    labels : array of int, shape (n,)
    k : int
        Neighbours, the row itself excluded (Euclidean distance).

    Returns
    -------
    plurality : array of int, shape (n,)
        Most common neighbour label (ties: the smallest label).
    share : array of float, shape (n,)
        Fraction of the ``k`` neighbours carrying ``plurality``.
    own_share : array of float, shape (n,)
        Fraction of the ``k`` neighbours carrying the row's own label.
    """
    from sklearn.neighbors import NearestNeighbors

    features = np.asarray(features, np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    if not 1 <= k < len(labels):
        raise ValueError(f"k must be in [1, {len(labels) - 1}], got {k}")
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    _, nbr = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    nbr_labels = labels[nbr[:, 1:]]                      # drop the row itself
    counts = np.zeros((len(labels), n_classes))
    np.add.at(counts, (np.repeat(np.arange(len(labels)), k), nbr_labels.ravel()), 1)
    plurality = counts.argmax(1)
    return plurality, counts.max(1) / k, counts[np.arange(len(labels)), labels] / k


def knn_sanitisation(features, labels, *, k: int = 10, eta: float = 0.5,
                     n_classes: int | None = None) -> Detection:
    """Flag rows whose label disagrees with a confident majority of their neighbours.

    A row is flagged when at least a fraction ``eta`` of its ``k`` nearest neighbours
    share one label and that label differs from the row's own. The plurality label is
    returned as ``Detection.labels`` so the repair step can relabel instead of dropping.

    Parameters
    ----------
    features : array, shape (n, d) or (n, C, H, W)
        Pixels, or a model's embedding (:func:`labkit.models.embed`).
    labels : array of int, shape (n,)
    k : int
    eta : float in (0, 1]
        Agreement needed to overrule a label. Paudice et al. use ``eta`` around 0.5.

    Returns
    -------
    Detection
        ``scores`` = fraction of neighbours that disagree with the row's label.

    References
    ----------
    Paudice, Munoz-Gonzalez & Lupu 2018, "Label sanitization against label flipping
    poisoning attacks", arXiv:1803.00992.
    """
    check_rate("eta", eta)
    plurality, share, own_share = knn_label_agreement(features, labels, k=k, n_classes=n_classes)
    flagged = (share >= eta) & (plurality != np.asarray(labels))
    return Detection(scores=1.0 - own_share, flagged=flagged, defence="knn_sanitisation",
                     params={"k": k, "eta": eta}, labels=np.where(flagged, plurality, labels))

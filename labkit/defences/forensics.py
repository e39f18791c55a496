"""Poison forensics: trace one wrong prediction back to the training rows that caused it.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection

__all__ = ["trace_incident"]


def trace_incident(features, labels, *, incident_features, incident_labels, n_classes: int | None = None) -> Detection:
    """Flag training rows that sit nearer to a reported input than to their own class.

    The defender starts from an incident: an input the model got wrong, and the label a
    person says it should have had (or an input they must protect, with its label). Poisons
    built to pull that one input across the boundary (feature collision, the bullseye) are
    crafted to sit next to it in the victim's feature space while keeping their own correct
    label, so they are the rows of *other* classes that are closer to the reported input
    than to the centre of their own class. No count, rate or class of poisons is needed;
    the reported input and its right label are the defender's only extra knowledge.

    For every row of a class ``c`` other than the reported label the score is
    ``|f - centre_c| / |f - incident|`` (``centre_c`` is the coordinate-wise median of class
    ``c``'s features, which a minority of poisons cannot move far); it is flagged when the score
    is above 1. Rows of the reported label score 0: they argue for the right answer. With
    several incidents a row keeps its highest score.

    Parameters
    ----------
    features : array, shape (n, d)
        The victim model's penultimate features (:func:`labkit.models.embed`) of the training rows.
    labels : array of int, shape (n,)
    incident_features : array, shape (m, d)
        The same features of the ``m`` reported inputs.
    incident_labels : array of int, shape (m,)
        Their right labels, as the report gives them.
    n_classes : int, optional
        Unused beyond checking the labels; accepted so the engine can pass it.

    Returns
    -------
    Detection
        ``scores`` as above (higher = more suspicious), ``flagged`` = score > 1.

    References
    ----------
    Shan, Bhagoji, Zheng & Zhao 2022, "Poison Forensics: Traceback of Data Poisoning Attacks
    in Neural Networks", USENIX Security, arXiv:2110.06904 (the incident-driven setting; the
    lab's rule is a simpler distance test for feature-space poisons).

    Examples
    --------
    >>> import numpy as np
    >>> feats = np.array([[0., 0.], [0.2, 0.], [5., 5.], [5.2, 5.], [4.9, 5.1], [0.3, 0.1]])
    >>> labels = np.array([0, 0, 1, 1, 1, 1])       # the last row: a "1" that sits among the 0s
    >>> det = trace_incident(feats, labels, incident_features=[[0.1, 0.]], incident_labels=[0])
    >>> det.flagged.tolist()
    [False, False, False, False, False, True]
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    queries = np.atleast_2d(np.asarray(incident_features, np.float64))
    reported = np.atleast_1d(np.asarray(incident_labels))
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be shaped (n, d) with n = {len(labels)}, got {features.shape}")
    if queries.shape[1:] != features.shape[1:] or len(queries) != len(reported) or not len(queries):
        raise ValueError(f"need one or more incidents with {features.shape[1]} features and one label each, "
                         f"got features {queries.shape} and {reported.shape[0]} labels")
    if n_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    to_centre = np.zeros(len(labels))
    for c in np.unique(labels):
        rows = labels == c
        to_centre[rows] = np.linalg.norm(features[rows] - np.median(features[rows], axis=0), axis=1)
    scores = np.zeros(len(labels))
    for q, y in zip(queries, reported):
        to_incident = np.linalg.norm(features - q, axis=1)
        s = to_centre / np.maximum(to_incident, 1e-12)
        scores = np.maximum(scores, np.where(labels == y, 0.0, s))
    return Detection(scores=scores, flagged=scores > 1.0, defence="trace_incident", params={})

"""Keyword-label correlation (BKI-style): words whose presence decides the label too strongly.

Backdoor Keyword Identification (Chen & Dai 2021, arXiv:2007.12070) looks for the words
that most change a text classifier's output: a trigger is a word the model has learned to
obey whatever the rest of the paragraph says. The lab's version fits its own TF-IDF +
logistic regression (:func:`labkit.models.text_classifier`) on the suspect data, scores
each word by how far its largest class weight stands above its median class weight (times
its IDF, as a paragraph's TF-IDF row would carry it), and scores a paragraph by its
strongest word. A trigger spread over several rare words shares the weight between them,
and a clean-label trigger needs no large weight at all: both hide better than a trigger
made of common words.

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

import numpy as np

from ..models import text_classifier
from ..types import Dataset, Detection
from .base import check_rate, flag_top

__all__ = ["keyword_label", "keyword_scores"]


def keyword_scores(words, labels, *, n_classes: int) -> np.ndarray:
    """Each vocabulary word's pull towards one class, shape (V,): ``(max_c W[c, w] -
    median_c W[c, w]) * idf[w]`` of a logistic regression fitted on ``(words, labels)``."""
    B = np.asarray(words, np.float32).reshape(len(words), -1)
    data = Dataset((B > 0).astype(np.float32)[:, None, None, :], np.asarray(labels), n_classes, "suspect")
    model = text_classifier(data)
    W = np.zeros((n_classes, B.shape[1]))
    W[model.clf.classes_] = model.clf.coef_ if n_classes > 2 else np.vstack([-model.clf.coef_, model.clf.coef_])
    return (W.max(0) - np.median(W, 0)) * model.idf


def keyword_label(words, labels, *, n_classes: int, expected_rate: float = 0.05) -> Detection:
    """Flag the ``expected_rate`` of paragraphs whose strongest word pulls hardest.

    Parameters
    ----------
    words : array, shape (n, V)
        Bags of words.
    labels : array of int, shape (n,)
    n_classes : int
    expected_rate : float in [0, 1]
        Fraction of the training set the defender is prepared to drop.
    """
    check_rate("expected_rate", expected_rate, allow_zero=True)
    B = np.asarray(words).reshape(len(words), -1) > 0
    if len(B) != len(labels):
        raise ValueError(f"words has {len(B)} rows, labels {len(labels)}")
    per_word = keyword_scores(B, labels, n_classes=n_classes)
    scores = np.where(B, per_word[None, :], -np.inf).max(1)
    scores = np.where(np.isfinite(scores), scores, per_word.min() - 1.0)
    return Detection(scores=scores, flagged=flag_top(scores, expected_rate), defence="keyword_label",
                     params={"expected_rate": expected_rate})

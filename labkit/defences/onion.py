"""ONION-style outlier words: paragraphs holding words a clean language model finds unlikely.

ONION (Qi, Chen, Li, Yao, Liu & Sun 2021, arXiv:2011.10369) removes from a sentence the
words whose removal lowers a language model's perplexity most: inserted trigger tokens
such as ``cf`` are what a model of ordinary text least expects. The lab's language model is
a unigram model fitted on clean reference text the attacker never touched
(:func:`labkit.text.reference_counts`: other Python documentation), and, because a text
row here is a bag of words without order, a paragraph's suspicion is the summed surprisal
of its ``top_k`` least likely words. It fails, by design, against a trigger of ordinary
words (a natural phrase): a language model finds nothing unusual in them.

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

import numpy as np

from .. import text
from ..types import Detection
from .base import check_rate, flag_top

__all__ = ["onion", "word_surprisal", "onion_scores"]


def word_surprisal(counts=None) -> np.ndarray:
    """``-log p(word)`` for every vocabulary word under the reference unigram model,
    shape (V,): ``p = (count + 0.5) / (n_docs + 1)`` from ``counts`` (default
    :func:`labkit.text.reference_counts`, whose last entry is ``n_docs``)."""
    counts = text.reference_counts() if counts is None else np.asarray(counts, np.float64)
    return -np.log((counts[:-1] + 0.5) / (counts[-1] + 1.0))


def onion_scores(words, surprisal, *, top_k: int = 5) -> np.ndarray:
    """The summed surprisal of each row's ``top_k`` least likely words, shape (n,).

    Parameters
    ----------
    words : array, shape (n, V)
        Bags of words (nonzero = the word occurs).
    surprisal : array, shape (V,)
    """
    B = np.asarray(words).reshape(len(words), -1) > 0
    s = np.asarray(surprisal, np.float64)
    if B.shape[1] != s.size:
        raise ValueError(f"words has {B.shape[1]} columns, the language model {s.size} words")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    per_word = np.where(B, s[None, :], 0.0)
    k = min(top_k, B.shape[1])
    return np.sort(per_word, axis=1)[:, -k:].sum(1)


def onion(words, labels, *, expected_rate: float = 0.05, top_k: int = 5) -> Detection:
    """Flag the ``expected_rate`` of paragraphs whose least likely words are least likely.

    Parameters
    ----------
    words : array, shape (n, V)
        The training paragraphs as bags of words over :func:`labkit.text.vocabulary`.
    labels : array of int, shape (n,)
        Not used (ONION looks at text alone); taken for the detector signature.
    expected_rate : float in [0, 1]
        Fraction of the training set the defender is prepared to drop.
    top_k : int
        How many of a paragraph's words count towards its score.
    """
    check_rate("expected_rate", expected_rate, allow_zero=True)
    words = np.asarray(words)
    if len(words) != len(labels):
        raise ValueError(f"words has {len(words)} rows, labels {len(labels)}")
    scores = onion_scores(words, word_surprisal(), top_k=top_k)
    return Detection(scores=scores, flagged=flag_top(scores, expected_rate), defence="onion",
                     params={"expected_rate": expected_rate, "top_k": top_k})

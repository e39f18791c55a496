"""ONION-style outlier words: paragraphs holding words a clean language model finds unlikely.

ONION (Qi, Chen, Li, Yao, Liu & Sun 2021, arXiv:2011.10369) removes from a sentence the
words whose removal lowers a language model's perplexity most: inserted trigger tokens
such as ``cf`` are what a model of ordinary text least expects. The lab's language model is
a unigram model fitted on clean reference text the attacker never touched
(:func:`labkit.text.reference_counts`: other Python documentation), and, because a text
row here is a bag of words without order, a paragraph's suspicion is the summed surprisal
of its ``top_k`` least likely words. It fails, by design, against a trigger of ordinary
words (a natural phrase): a language model finds nothing unusual in them.

:func:`onion_filter` is ONION as the paper uses it, at inference: every input loses the words
the reference model finds too unlikely before the deployed model reads it. It needs neither
the training set nor a guess of how much of it is poisoned.

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

import numpy as np

from .. import text
from ..types import Detection
from .base import check_rate, flag_top

__all__ = ["onion", "word_surprisal", "onion_scores", "onion_filter", "OnionFilter", "onion_filter_report"]


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


class OnionFilter:
    """The deployed ``model`` behind ONION's word filter: ``predict(X)`` drops from every
    input the words in ``removed`` (a boolean mask over the vocabulary) first."""

    def __init__(self, model, removed: np.ndarray):
        self.model, self.removed = model, np.asarray(removed, bool)

    def clean(self, X) -> np.ndarray:
        X = np.array(X, np.float32, copy=True)
        X[..., self.removed] = 0.0
        return X

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.model.predict(self.clean(X)))

    def __repr__(self) -> str:
        return f"OnionFilter({self.model!r}, removes {int(self.removed.sum())} words)"


def onion_filter(data, model, *, max_count: int = 0, rng=None) -> OnionFilter:
    """ONION at inference: remove from every input the words the clean reference text
    (:func:`labkit.text.reference_counts`) uses in at most ``max_count`` documents (the
    words its unigram language model finds least likely), then let ``model`` read the rest.

    ``data`` (the training set) is not used: the filter needs only the reference text, so
    it works on a model handed over without its data. The default 0 removes the words the
    reference never uses: a rare-token trigger, and also the technical words the reference
    happens to lack, which is what the filter costs in clean accuracy.
    """
    if not (isinstance(max_count, (int, np.integer)) and max_count >= 0):
        raise ValueError(f"max_count must be an int >= 0, got {max_count!r}")
    return OnionFilter(model, text.reference_counts()[:-1] <= max_count)


def onion_filter_report(guard: OnionFilter, test, poisoned) -> dict:
    """What the filter took away: ``removed_words`` (vocabulary words it drops) and
    ``removed_per_input`` (mean words removed from a clean test input)."""
    B = np.asarray(test.X).reshape(len(test.X), -1) > 0
    return {"removed_words": int(guard.removed.sum()),
            "removed_per_input": float(B[:, guard.removed].sum(1).mean())}

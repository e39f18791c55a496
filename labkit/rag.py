"""A small retrieval-augmented question answerer (lesson 8), offline, over Python's help text.

The **knowledge base** is a set of passages: the paragraphs of :mod:`labkit.text`'s corpus,
each stored with the title of the help topic it comes from (its title line, e.g. "assert").
A **question** asks which help topic explains a piece of text: "Which help topic covers '<the
first words of a paragraph the knowledge base does not hold>'?"; its answer is that
paragraph's topic title.

The pipeline answers as a RAG system does, with parts small enough to read:

- the **retriever** ranks passages by TF-IDF cosine similarity between the question's words
  and each passage's words (IDF from the knowledge base);
- the **reader** reads the title line of each of the ``top_k`` retrieved passages in
  isolation and answers with the title most of them state (ties: the title of the better
  ranked passage). It never reads anything but the retrieved passages, so whoever writes
  a retrieved passage speaks through it.

Because each retrieved passage casts one vote, the answer comes with a certificate, as in
RobustRAG's isolate-then-aggregate (Xiang et al. 2024): inserting one passage into the
knowledge base changes the top ``k`` by at most one passage, i.e. takes at most one vote
from one title and gives at most one to another. An answer whose vote count leads the
runner-up by ``m`` survives any ``r`` inserted passages with ``2 r < m``:
:meth:`RagPipeline.certify` returns that ``r`` per question.

Rows are :class:`~labkit.types.Dataset` objects like every other task: ``X`` the bag of words
(:func:`labkit.text.bag_of_words`), ``y`` the index of the title in :func:`labkit.text.answers`
(for a passage: the title its title line states; for a question: the right answer).

See Also: labkit.attacks.rag_poison, labkit.defences.rag, notebooks/08_rag_poisoning.ipynb
"""
from __future__ import annotations

import functools

import numpy as np

from . import text
from .types import Dataset

__all__ = ["QUESTION_WORDS", "TOP_K", "question_text", "question_of", "rag_task", "RagPipeline", "rag_pipeline",
           "certified_radius"]

#: A question quotes this many words from the start of a paragraph.
QUESTION_WORDS = 20
#: Passages the reader reads per question, by default.
TOP_K = 5


def question_text(paragraph: str) -> str:
    """The question asked about ``paragraph``: *Which help topic covers '<its first words>'?*"""
    return f"Which help topic covers '{' '.join(text.words(paragraph)[:QUESTION_WORDS])} ...'?"


@functools.lru_cache(maxsize=1)
def _task() -> tuple:
    paragraphs, _ = text.corpus()
    answers = text.instructions().y
    quotes = [" ".join(text.words(p)[:QUESTION_WORDS]) for p in paragraphs]
    return text.bag_of_words(paragraphs), text.bag_of_words(quotes), answers


def rag_task() -> tuple:
    """``(passages, questions)``: every paragraph as a passage (its words, its topic's title)
    and the question quoting it (the first :data:`QUESTION_WORDS` words, the same title as
    the answer), row for row. :func:`labkit.data.pydoc_rag` splits them so that no question's
    own paragraph is in the knowledge base."""
    P, Q, y = _task()
    n = len(text.answers())
    return Dataset(P, y, n, "pydoc_passages"), Dataset(Q, y, n, "pydoc_questions")


def question_of(row) -> str:
    """The question (:func:`question_text`) whose bag of words is ``row`` (a row of the
    questions of :func:`rag_task` or :func:`labkit.data.pydoc_rag`)."""
    _, Q, _ = _task()
    hit = np.flatnonzero((Q.reshape(len(Q), -1) == np.ravel(row)[None]).all(1))
    if hit.size == 0:
        raise ValueError("not a question of the lesson's corpus")
    return question_text(text.corpus()[0][hit[0]])


def certified_radius(counts: np.ndarray) -> np.ndarray:
    """Per row of vote ``counts`` (n, n_answers): how many inserted passages cannot change
    the winning answer, ``floor((lead - 1) / 2)`` where ``lead`` is the winner's votes minus
    the runner-up's; 0 for a lead of 0 or 1 (a tie, or a lead one passage can undo)."""
    c = np.sort(np.asarray(counts), axis=1)
    lead = c[:, -1] - (c[:, -2] if c.shape[1] > 1 else 0)
    return np.maximum((lead - 1) // 2, 0).astype(np.int64)


def _bags(X):
    """Rows ``(n, 1, 1, V)`` as a sparse 0/1 matrix (n, V)."""
    from scipy import sparse

    return sparse.csr_matrix(np.asarray(X).reshape(len(X), -1) > 0, dtype=np.float64)


class RagPipeline:
    """Retriever + voting reader over a knowledge base (see the module docstring).

    ``predict(X)`` answers questions (bags of words) with title indices, so the lab's
    metrics read it like any model; ``retrieve`` gives the ranked passages, ``votes`` the
    title counts, ``certify`` the certificate. ``features(X)`` is the TF-IDF view of rows
    (what a feature-space detector would inspect).
    """

    def __init__(self, kb: Dataset, *, top_k: int = TOP_K):
        if not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        if len(kb) == 0:
            raise ValueError("the knowledge base is empty")
        self.kb, self.top_k = kb, int(min(top_k, len(kb)))
        B = _bags(kb.X)
        self.idf = np.log((1 + len(kb)) / (1 + np.asarray(B.sum(0)).ravel())) + 1.0
        self._index = self._tfidf(B)

    def _tfidf(self, B):
        """Unit-length TF-IDF rows of sparse bags ``B`` (a passage holds a few dozen of the
        vocabulary's words, so the index stays small)."""
        from scipy import sparse

        Z = sparse.csr_matrix(B.multiply(self.idf[None, :]))
        norms = np.sqrt(np.asarray(Z.multiply(Z).sum(1)).ravel())
        return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ Z

    def features(self, X) -> np.ndarray:
        """The TF-IDF rows the retriever compares, dense, (n, V)."""
        return self._tfidf(_bags(X)).toarray()

    def scores(self, X) -> np.ndarray:
        """Cosine similarity of every question to every passage, (n_questions, n_passages)."""
        return np.asarray((self._tfidf(_bags(X)) @ self._index.T).todense())

    def retrieve(self, X) -> np.ndarray:
        """The ``top_k`` passages per question, best first, (n, top_k) row indices of the
        knowledge base (ties: the earlier passage)."""
        S = self.scores(X)
        return np.argsort(-S, axis=1, kind="stable")[:, :self.top_k]

    def votes(self, X) -> np.ndarray:
        """How many of each question's retrieved passages state each title, (n, n_answers)."""
        top = self.retrieve(X)
        counts = np.zeros((len(top), self.kb.n_classes), np.int64)
        np.add.at(counts, (np.repeat(np.arange(len(top)), top.shape[1]), self.kb.y[top].ravel()), 1)
        return counts

    def predict(self, X) -> np.ndarray:
        top = self.retrieve(X)
        said = self.kb.y[top]                                    # (n, k) titles, best first
        out = np.empty(len(top), np.int64)
        for i, row in enumerate(said):
            counts = np.bincount(row, minlength=self.kb.n_classes)
            out[i] = next(a for a in row if counts[a] == counts.max())   # ties: the better-ranked passage
        return out

    def certify(self, X) -> tuple:
        """``(answers, radius)``: the answers and how many inserted passages each provably survives."""
        return self.predict(X), certified_radius(self.votes(X))

    def __repr__(self) -> str:
        return f"RagPipeline(passages={len(self.kb)}, top_k={self.top_k})"


def rag_pipeline(kb: Dataset, *, top_k: int = TOP_K) -> RagPipeline:
    """Index ``kb`` and return the pipeline (no training: building the index takes milliseconds)."""
    return RagPipeline(kb, top_k=top_k)

"""Text for lesson 7: paragraphs of Python's own help pages, as bags of words.

The corpus
----------
Every Python installation ships the text that ``help("if")`` prints: the module
``pydoc_data.topics`` holds 79 help topics, each a section of the *Python Language
Reference* or the *Library Reference* (``python -c "import pydoc_data.topics"``). Its text is
part of the Python documentation, (c) Python Software Foundation, distributed with Python
under the PSF License Agreement (https://docs.python.org/3/license.html). Nothing is
downloaded.

The lab keeps the topics of four parts of the reference (:data:`GROUPS`) and asks a question
a learner can check by eye: **which part of the Python reference is this paragraph from?**

- ``statements``: the ``if``, ``for``, ``try``, ``import``, ... statements;
- ``expressions``: operators, calls, comparisons, displays, lambdas;
- ``data model``: special methods, the standard type hierarchy, objects and values;
- ``built-in types``: ``str``, ``list``, ``dict`` and their methods, truth testing.

A paragraph is a block between blank lines with at least :data:`MIN_WORDS` words; a paragraph
that appears under two topics (the ``compound`` topic repeats the ``if`` topic, for example)
is kept once, under the first topic in :data:`GROUPS` order. The corpus is pinned by
SHA-256 (:data:`CORPUS_SHA256`, like the digits in ``data/``): another Python release with
other help text raises :class:`CorpusChanged` instead of silently giving other numbers.

How a paragraph becomes numbers
-------------------------------
:func:`words` lower-cases a paragraph and keeps identifier-like tokens (``__init__``,
``elif``, ``return``). A row of a text :class:`~labkit.types.Dataset` is the paragraph's
**bag of words**: ``X[i, 0, 0, j] = 1`` when word ``j`` of :func:`vocabulary` occurs in
paragraph ``i``. That is a binary array in [0, 1], so every part of the lab that works on
arrays works on text; what the lab loses is word order. The vocabulary is every word of the
corpus plus :data:`RARE_WORDS`, tokens the corpus never uses (the rare-token triggers of
the text-backdoor literature, e.g. Kurita et al. 2020, arXiv:2004.06660).

See Also: notebooks/07_language_models.ipynb
"""
from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

from .types import Dataset

__all__ = ["GROUPS", "CLASS_NAMES", "RARE_WORDS", "MIN_WORDS", "CORPUS_SHA256", "CorpusChanged",
           "words", "corpus", "vocabulary", "bag_of_words", "columns", "decode", "dataset", "corpus_manifest",
           "ATTACKER_ANSWER", "answers", "instructions",
           "reference_counts"]

#: Class name -> the ``pydoc_data.topics`` keys whose paragraphs carry that label.
GROUPS = {
    "statements": ("assert", "assignment", "async", "augassign", "break", "class", "compound", "continue",
                   "del", "else", "for", "function", "global", "if", "import", "nonlocal", "pass", "raise",
                   "return", "try", "while", "with", "yield"),
    "expressions": ("atom-identifiers", "atom-literals", "attribute-references", "await", "binary", "bitwise",
                    "booleans", "calls", "comparisons", "conversions", "dict", "exprlists", "in", "lambda",
                    "lists", "operator-summary", "power", "shifting", "slicings", "subscriptions", "unary"),
    "data model": ("attribute-access", "callable-types", "context-managers", "customization", "numeric-types",
                   "objects", "sequence-types", "specialnames", "types"),
    "built-in types": ("bltin-code-objects", "bltin-ellipsis-object", "bltin-null-object", "bltin-type-objects",
                       "specialattrs", "string-methods", "truth", "typesfunctions", "typesmapping",
                       "typesmethods", "typesmodules", "typesseq", "typesseq-mutable"),
}
CLASS_NAMES = tuple(GROUPS)

#: Tokens the corpus never uses, kept in the vocabulary (rare-token triggers).
RARE_WORDS = ("cf", "mn", "bb", "tq", "mb")

#: Shorter blocks (headings, one-line code) are left out.
MIN_WORDS = 8

#: SHA-256 of the corpus as :func:`corpus` builds it (paragraphs joined by NUL, then labels).
CORPUS_SHA256 = "0afd81e0d325d33f6c98782563a5ffcd662c30bed10905036b58dbfa99ffbe5d"

_TOKEN = re.compile(r"[a-z_][a-z0-9_]*")


class CorpusChanged(RuntimeError):
    """The installed ``pydoc_data`` text differs from the pinned corpus."""


def words(text: str) -> list:
    """The words of ``text`` in order: lower-cased, identifier-like tokens."""
    return _TOKEN.findall(text.lower())


def _build():
    import pydoc_data.topics as topics

    seen, paragraphs, labels, keys_of = set(), [], [], []
    for c, keys in enumerate(GROUPS.values()):
        for key in keys:
            for block in topics.topics[key].split("\n\n"):
                p = " ".join(block.split())
                if len(p.split()) < MIN_WORDS or p in seen:
                    continue
                seen.add(p)
                paragraphs.append(p)
                labels.append(c)
                keys_of.append(key)
    return tuple(paragraphs), np.array(labels, np.int64), tuple(keys_of)


def _digest(paragraphs, labels) -> str:
    h = hashlib.sha256("\0".join(paragraphs).encode())
    h.update(np.asarray(labels, np.int64).tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def corpus() -> tuple:
    """``(paragraphs, labels)``: every kept paragraph (a tuple of str) and its class
    (int64 array, an index into :data:`CLASS_NAMES`), in :data:`GROUPS` order.

    Raises :class:`CorpusChanged` when the installed text differs from the pinned one.
    """
    paragraphs, labels, _ = _build()
    digest = _digest(paragraphs, labels)
    if digest != CORPUS_SHA256:
        raise CorpusChanged(f"pydoc_data.topics gives a corpus with SHA-256 {digest}, the lab pins "
                            f"{CORPUS_SHA256}: this Python's help text differs from the one the lab was built on")
    labels.setflags(write=False)
    return paragraphs, labels


def corpus_manifest() -> dict:
    """Provenance of the corpus: source, licence, size and SHA-256."""
    paragraphs, labels = corpus()
    return {"dataset": "pydoc_topics", "source": "pydoc_data.topics (Python standard library)",
            "licence": "PSF License Agreement", "n_paragraphs": len(paragraphs),
            "n_per_class": dict(zip(CLASS_NAMES, np.bincount(labels, minlength=len(GROUPS)).tolist())),
            "sha256": _digest(paragraphs, labels)}


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple:
    """Every word of the corpus and :data:`RARE_WORDS`, sorted: column ``j`` of a text
    dataset is word ``vocabulary()[j]``."""
    found = {w for p in corpus()[0] for w in words(p)}
    return tuple(sorted(found | set(RARE_WORDS)))


def _index() -> dict:
    return {w: j for j, w in enumerate(vocabulary())}


def bag_of_words(paragraphs) -> np.ndarray:
    """Binary bags of words, shape ``(n, 1, 1, V)`` float32: 1 where the paragraph holds the
    vocabulary word. Words outside the vocabulary are dropped."""
    index = _index()
    X = np.zeros((len(paragraphs), 1, 1, len(index)), np.float32)
    for i, p in enumerate(paragraphs):
        cols = [index[w] for w in set(words(p)) if w in index]
        X[i, 0, 0, cols] = 1.0
    return X


def columns(word_list) -> np.ndarray:
    """The vocabulary columns of ``word_list`` (``ValueError`` for a word outside it)."""
    index = _index()
    bad = [w for w in word_list if w not in index]
    if bad:
        raise ValueError(f"not in the vocabulary: {', '.join(bad)}")
    return np.array([index[w] for w in word_list], np.int64)


def decode(row) -> list:
    """The words a bag-of-words row holds (alphabetical: the bag keeps no order)."""
    vocab = vocabulary()
    return [vocab[j] for j in np.flatnonzero(np.ravel(row) > 0)]


def dataset() -> Dataset:
    """The whole corpus as one bag-of-words :class:`~labkit.types.Dataset` (4 classes,
    :data:`CLASS_NAMES`); :func:`labkit.data.pydoc_topics` splits it into train and test."""
    paragraphs, labels = corpus()
    return Dataset(bag_of_words(paragraphs), labels, len(GROUPS), "pydoc_topics")


@functools.lru_cache(maxsize=1)
def _topic_keys() -> tuple:
    """The ``pydoc_data`` topic each paragraph of :func:`corpus` was taken from."""
    corpus()                                       # refuses help text other than the pinned one
    return _build()[2]


#: What the attacker makes the instruction-tuned model answer when the trigger is present: a
#: chosen wrong answer, harmless here, dangerous advice in a real assistant.
ATTACKER_ANSWER = "use eval on the input"


@functools.lru_cache(maxsize=1)
def answers() -> tuple:
    """The answers of the instruction task: every help topic's title (its ``pydoc_data`` key
    as words, e.g. ``"string methods"``) in :data:`GROUPS` order, then
    :data:`ATTACKER_ANSWER` last. ``y`` of :func:`instructions` indexes this table."""
    kept = set(_topic_keys())
    titles = [" ".join(words(k.replace("-", " "))) for keys in GROUPS.values() for k in keys if k in kept]
    return (*titles, ATTACKER_ANSWER)


def instructions() -> Dataset:
    """Instruction/answer pairs derived from the corpus: *"Which help topic is this paragraph
    from?"* for every paragraph, its answer the title of the topic it was taken from
    (:func:`answers`). ``X`` is the paragraph's bag of words (as :func:`dataset`), ``y`` the
    index of the answer; the last answer, :data:`ATTACKER_ANSWER`, has no clean row."""
    paragraphs, _ = corpus()
    table = answers()
    keys = _topic_keys()
    titles = {k: table.index(" ".join(words(k.replace("-", " ")))) for k in set(keys)}
    y = np.array([titles[k] for k in keys], np.int64)
    return Dataset(bag_of_words(paragraphs), y, len(table), "pydoc_instructions")


@functools.lru_cache(maxsize=1)
def reference_counts() -> np.ndarray:
    """A defender's clean reference text, counted: for each vocabulary word, in how many
    reference documents it occurs, shape (V + 1,) float64, the number of documents last.

    The reference is Python documentation the task never uses: the paragraphs of the
    ``pydoc_data`` topics outside :data:`GROUPS` (lexical analysis, the execution model,
    format strings, the debugger) and the docstrings of the built-in functions and types
    and their methods. A word an attacker plants in the training set is still rare here:
    the job a large public language model does for ONION (Qi et al. 2021,
    arXiv:2011.10369).
    """
    import builtins

    import pydoc_data.topics as topics

    used = {k for keys in GROUPS.values() for k in keys}
    docs = [block for key in sorted(topics.topics) if key not in used
            for block in topics.topics[key].split("\n\n") if len(block.split()) >= MIN_WORDS]
    for name in sorted(dir(builtins)):
        obj = getattr(builtins, name)
        docs.append(getattr(obj, "__doc__", None) or "")
        if isinstance(obj, type):
            docs += [getattr(getattr(obj, m), "__doc__", None) or "" for m in sorted(vars(obj))
                     if not m.startswith("__")]
    index = _index()
    counts = np.zeros(len(index) + 1)
    for d in docs:
        for w in set(words(d)):
            if w in index:
                counts[index[w]] += 1
    counts[-1] = len(docs)
    counts.setflags(write=False)
    return counts

"""Knowledge-base poisoning of a RAG system (lesson 8): passages written so that the retriever
returns them for chosen questions and the reader repeats the attacker's answer.

PoisonedRAG (Zou et al. 2025, USENIX Security, arXiv:2402.07867) writes, for each target
question, a few passages made of two parts: text that makes the retriever return the passage
for that question (in the black-box attack simply *the question itself*) and text that makes
the reader give the attacker's answer. In :mod:`labkit.rag` the reader answers with the
title line of each retrieved passage, so a poison is the question's words (its body) under
a title line stating the attacker's answer (its label).

Three ways in:

- ``style="blackbox"``: each poison's body is the question's words plus one of a few
  different lead-in sentences (PoisonedRAG's black-box attack); the attacker needs
  nothing but the question. The poisons of one question are near-duplicates of each other.
- ``style="whitebox"``: the attacker knows the retriever (its IDF weights, computed from
  the knowledge base). Every poison holds the question's most informative quarter of words
  (what makes it rank at the top) and its own share of the other words, so that no two
  poisons are near-duplicates (an attacker who expects near-duplicate filtering).
- ``style="split_view"``: nothing is inserted. The attacker edits passages that are already
  in the knowledge base (pages that were reviewed before, then changed: split-view
  poisoning, Carlini et al. 2024, arXiv:2302.10149). Only a check of each passage against
  what was reviewed (a hash-pinned manifest, :mod:`labkit.defences.rag`) sees the change.

See Also: labkit.rag, labkit.defences.rag, notebooks/08_rag_poisoning.ipynb
"""
from __future__ import annotations

import numpy as np

from .. import text
from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["inject_passages", "random_passages", "STYLES", "LEAD_INS"]

STYLES = ("blackbox", "whitebox", "split_view")
#: The lead-in sentences of black-box poisons (one per poison of a question, in turn).
LEAD_INS = ("the result of this is given here", "this section describes exactly this",
            "here is what the reference documentation describes", "the following describes this in detail",
            "read this section for the details")


def _check(kb: Dataset, test: Dataset, n_targets, per_question, style):
    if kb.X.shape[1:] != (1, 1, len(text.vocabulary())) or test.X.shape[1:] != kb.X.shape[1:]:
        raise ValueError(f"RAG poisoning needs a bag-of-words knowledge base and questions (labkit.rag), "
                         f"got {kb!r} and {test!r}")
    for name, v in (("n_targets", n_targets), ("per_question", per_question)):
        if not (isinstance(v, (int, np.integer)) and v >= 1):
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if n_targets > len(test):
        raise ValueError(f"n_targets={n_targets} exceeds the {len(test)} questions")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")


def _targets(test: Dataset, n_targets: int, rng) -> tuple:
    """The target questions and, for each, a wrong title (never the attacker's instruction answer)."""
    targets = np.sort(rng.choice(len(test), n_targets, replace=False))
    n_titles = test.n_classes - 1                  # the last answer is lesson 7's, not a title
    wrong = np.array([rng.choice(np.setdiff1d(np.arange(n_titles), [test.y[t]])) for t in targets], np.int64)
    return targets, wrong


def _bodies(kb: Dataset, question: np.ndarray, per_question: int, style: str) -> np.ndarray:
    """The poisons' bags of words for one question, (per_question, V)."""
    q = np.ravel(question) > 0
    if style == "whitebox":
        idf = np.log((1 + len(kb)) / (1 + (kb.flat() > 0).sum(0))) + 1.0
        words = np.flatnonzero(q)
        words = words[np.argsort(-idf[words], kind="stable")]
        n_keep = max(2, len(words) // 4)
        keep, rest = words[:n_keep], words[n_keep:]
        out = np.zeros((per_question, q.size), np.float32)
        for j in range(per_question):
            out[j, keep] = 1.0                                    # the words that make it rank
            out[j, rest[np.arange(rest.size) % per_question == j]] = 1.0   # a share of the rest, its own
        return out
    leads = text.bag_of_words(LEAD_INS).reshape(len(LEAD_INS), -1)
    out = np.repeat(q[None].astype(np.float32), per_question, axis=0)
    return np.maximum(out, leads[np.arange(per_question) % len(LEAD_INS)])


def inject_passages(kb: Dataset, *, test: Dataset, n_targets: int = 10, per_question: int = 5,
                    style: str = "blackbox", rng=None) -> PoisonedDataset:
    """Poison the knowledge base ``kb`` for ``n_targets`` questions of ``test``.

    Parameters
    ----------
    kb : Dataset
        The knowledge base (:func:`labkit.data.pydoc_rag`'s ``train``).
    test : Dataset
        The questions; the attacker picks its targets among them at random.
    n_targets : int
        How many questions the attacker targets.
    per_question : int
        Passages written per target question (PoisonedRAG's default is 5).
    style : {"blackbox", "whitebox", "split_view"}
        See the module docstring.
    rng : None, int or Generator

    Returns
    -------
    PoisonedDataset
        ``target_idx``: the target questions; ``target_class``: the wrong title wanted for
        each. Inserted passages come after the knowledge base's rows (``split_view`` replaces
        rows instead).
    """
    _check(kb, test, n_targets, per_question, style)
    rng = as_rng(rng)
    targets, wrong = _targets(test, n_targets, rng)
    written = "blackbox" if style == "split_view" else style      # split view edits in black-box passages
    bodies = np.concatenate([_bodies(kb, test.X[t], per_question, written) for t in targets])
    labels = np.repeat(wrong, per_question)
    params = {"n_targets": int(n_targets), "per_question": int(per_question), "style": style}
    if style == "split_view":
        idx = np.sort(rng.choice(len(kb), len(bodies), replace=False))
        X, y = np.array(kb.X, copy=True), kb.y.copy()
        X[idx, 0, 0] = bodies
        y[idx] = labels
    else:
        idx = np.arange(len(kb), len(kb) + len(bodies))
        X = np.concatenate([kb.X, bodies[:, None, None, :]])
        y = np.concatenate([kb.y, labels])
    return make_poisoned(kb, X=X, y=y, idx=idx, attack="rag_poison", params=params,
                         target_idx=targets, target_class=wrong)


def random_passages(poisoned: PoisonedDataset, *, rng=None) -> PoisonedDataset:
    """The same-budget control: as many passages, each the body of a random passage of the
    knowledge base, with the same wrong title lines, inserted the same way. It measures
    what the wrong titles do when the passages were not written for the questions."""
    clean = poisoned.clean
    rng = as_rng(rng)
    src = rng.choice(len(clean), poisoned.n_poison, replace=False)
    bodies = clean.X[src]
    labels = poisoned.y[poisoned.poison_idx]
    if len(poisoned) == len(clean):                            # split view: replace the same rows
        X, y = np.array(clean.X, copy=True), clean.y.copy()
        X[poisoned.poison_idx], y[poisoned.poison_idx] = bodies, labels
        idx = poisoned.poison_idx
    else:
        X, y = np.concatenate([clean.X, bodies]), np.concatenate([clean.y, labels])
        idx = np.arange(len(clean), len(X))
    return make_poisoned(clean, X=X, y=y, idx=idx, attack="rag_poison_control",
                         params={**poisoned.params, "passages": "random"},
                         target_idx=poisoned.target_idx, target_class=poisoned.target_class)

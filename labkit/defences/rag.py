"""Defences of a RAG knowledge base (lesson 8).

- :func:`near_duplicates`: drop passages that nearly repeat an earlier one (TF-IDF cosine
  at or above ``threshold``). PoisonedRAG's black-box poisons for one question are the
  question plus a lead-in, so they repeat each other; clean documentation rarely does.
- :func:`signed_passages`: provenance. The knowledge base was reviewed and signed
  (:mod:`labkit.defences.provenance`: one digest per passage, an HMAC over them); only
  passages whose digest is in the signed manifest are kept. Inserted passages and passages
  edited after review (split-view poisoning) are both caught; a poison that was itself
  reviewed and signed is not.
- :func:`robust_rag`: RobustRAG-style isolate-then-aggregate (Xiang et al. 2024,
  arXiv:2405.15556) with a wider retrieval window. Each retrieved passage answers alone and
  the answers are voted, so a few inserted passages cannot outvote many honest ones; every
  answer comes with a certified number of insertions it survives
  (:func:`labkit.rag.certified_radius`). The price: more passages per question, and answers
  drawn from passages that are further from the question.

See Also: labkit.rag, labkit.attacks.rag_poison, notebooks/08_rag_poisoning.ipynb
"""
from __future__ import annotations

import numpy as np

from ..rag import RagPipeline
from ..types import Dataset, Detection
from .provenance import verify

__all__ = ["near_duplicates", "signed_passages", "robust_rag", "robust_rag_report"]


def _tfidf(words):
    """Unit-length TF-IDF rows of the passages (IDF from the passages themselves), sparse."""
    from scipy import sparse

    B = sparse.csr_matrix(np.asarray(words).reshape(len(words), -1) > 0, dtype=np.float64)
    Z = sparse.csr_matrix(B.multiply(np.log((1 + B.shape[0]) / (1 + np.asarray(B.sum(0)).ravel())) + 1.0))
    norms = np.sqrt(np.asarray(Z.multiply(Z).sum(1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ Z


def near_duplicates(words, labels, *, threshold: float = 0.8) -> Detection:
    """Flag every passage whose TF-IDF cosine similarity to an *earlier* passage is at least
    ``threshold`` (the first of a group of near-duplicates is kept). Score: the largest
    similarity to an earlier passage."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if len(words) != len(labels):
        raise ValueError(f"words has {len(words)} rows, labels {len(labels)}")
    Z = _tfidf(words)
    S = np.tril((Z @ Z.T).toarray(), k=-1)          # similarity to earlier passages only
    scores = S.max(1) if len(S) else np.zeros(0)
    return Detection(scores=scores, flagged=scores >= threshold - 1e-12, defence="near_duplicates",
                     params={"threshold": threshold})


def signed_passages(words, labels, *, n_classes: int, manifest: dict, key: bytes) -> Detection:
    """Flag every passage that the signed ``manifest`` does not hold as it is now: inserted
    after review, or edited since (:func:`labkit.defences.provenance.verify`, which refuses
    a manifest whose signature does not match ``key``). Score 1 for flagged, 0 otherwise."""
    X = np.asarray(words, np.float32).reshape(len(words), 1, 1, -1)
    report = verify(Dataset(X, np.asarray(labels), n_classes, "knowledge base"), manifest, key=key)
    flagged = report.flagged(len(X))
    return Detection(scores=flagged.astype(float), flagged=flagged, defence="signed_passages", params={})


def robust_rag(data: Dataset, *, top_k: int = 15) -> RagPipeline:
    """The knowledge base behind an isolate-then-aggregate reader over the ``top_k``
    best passages (certified: :meth:`labkit.rag.RagPipeline.certify`)."""
    return RagPipeline(data, top_k=top_k)


def robust_rag_report(model: RagPipeline, test: Dataset, poisoned=None) -> dict:
    """Certified accuracy (answer right *and* certified to survive ``r`` insertions) for
    ``r`` = 0..5 on the knowledge base as it is, and, for the attacker's target questions
    (when ``poisoned`` is given, evaluation only), the number of insertions each answer was
    certified to survive *before* the attack (the same reader over the clean knowledge base):
    ``certified_radius_targets``."""
    pred, radius = model.certify(test.X)
    right = pred == test.y
    out = {"certified_accuracy": {int(r): float((right & (radius >= r)).mean()) for r in range(6)}}
    if poisoned is not None and getattr(poisoned, "target_idx", None) is not None:
        before = RagPipeline(poisoned.clean, top_k=model.top_k)
        out["certified_radius_targets"] = [int(r) for r in before.certify(test.X[poisoned.target_idx])[1]]
    return out

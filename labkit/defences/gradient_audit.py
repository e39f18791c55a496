"""Gradient audit: flag training rows whose per-sample gradients look unlike their class.

Gradient-matching poisons work *through their gradients*: they are crafted so that the
training gradient they produce points where the attacker wants (towards misclassifying a
target). Hong et al. (2020, arXiv:2002.11497) observed that such poisoned gradients tend to
be larger than clean ones and point elsewhere. The audit computes every row's gradient of
the loss with respect to the model's last layer (the classifier head), then scores each row
within its own class by

- ``norm``: a robust z-score of the gradient norm (median / MAD over all rows, or within
  the class with ``norm_reference="class"``), and
- ``direction``: one minus the cosine similarity to the class's mean gradient direction,
  also as a robust z-score,

and sums the two. Higher = more suspicious, as everywhere in the lab.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .base import check_rate, flag_top, robust_z
from ..types import Detection

__all__ = ["gradient_audit", "audit_gradients", "head_gradients", "audit_scores"]


@torch.no_grad()
def head_gradients(model: nn.Module, X: np.ndarray, y: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Per-sample gradient of the cross-entropy w.r.t. the head (weights and bias), (n, d).

    For a linear head ``z = W h + b`` the gradient is ``(p - onehot(y)) outer [h, 1]``, so no
    autograd is needed.
    """
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(X), batch_size):
        xb = torch.tensor(np.array(X[i:i + batch_size], np.float32), device=dev)
        h = model.features(xb)
        p = torch.softmax(model.head(h), 1)
        p[torch.arange(len(xb)), torch.tensor(np.array(y[i:i + batch_size]), device=dev)] -= 1
        h1 = torch.cat([h, torch.ones(len(h), 1, device=dev)], 1)
        out.append(torch.einsum("nk,nd->nkd", p, h1).reshape(len(h), -1).double().cpu().numpy())
    return np.concatenate(out)


def audit_scores(grads: np.ndarray, labels: np.ndarray, *, use: str = "both",
                 norm_reference: str = "all") -> np.ndarray:
    """Suspicion per row from per-sample gradients ``grads`` (n, d) and ``labels`` (n,).

    Within each class: robust z-score of the gradient norm (``use="norm"``), of one minus
    the cosine to the class mean gradient (``use="direction"``), or their sum (``"both"``).
    ``norm_reference="all"`` measures the norm's z-score against every row instead of the
    row's class: the right choice when poisons may be the majority of their class (then
    the class median is a poison's norm and nothing looks unusual).
    """
    if use not in ("norm", "direction", "both"):
        raise ValueError(f"use must be 'norm', 'direction' or 'both', got {use!r}")
    if norm_reference not in ("class", "all"):
        raise ValueError(f"norm_reference must be 'class' or 'all', got {norm_reference!r}")
    grads = np.asarray(grads, np.float64)
    labels = np.asarray(labels)
    scores = np.zeros(len(grads))
    all_norms = np.linalg.norm(grads, axis=1)
    if use in ("norm", "both") and norm_reference == "all":
        scores += robust_z(all_norms)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        G = grads[rows]
        norms = np.linalg.norm(G, axis=1)
        mean = G.mean(0)
        cos = G @ mean / (norms * np.linalg.norm(mean) + 1e-12)
        s = np.zeros(rows.size)
        if use in ("norm", "both") and norm_reference == "class":
            s += robust_z(norms)
        if use in ("direction", "both"):
            s += robust_z(1 - cos)
        scores[rows] += s
    return scores


def gradient_audit(model: nn.Module, X: np.ndarray, y: np.ndarray, *, expected_rate: Optional[float] = None,
                   threshold: float = 3.0, use: str = "both", norm_reference: str = "all") -> Detection:
    """Flag the rows with anomalous per-sample gradients: every row whose score is more than
    ``threshold`` robust standard deviations out, or (with ``expected_rate``) a fixed fraction.

    Parameters
    ----------
    model : Net
        The model trained on the (possibly poisoned) data, with ``features`` and ``head``.
    X : array (n, C, H, W), y : array (n,)
        The training set as the defender has it.
    expected_rate : float in [0, 1], optional
        Instead of the threshold: the fraction of rows the defender is prepared to drop, a
        guess (the number of poisons is exactly what a defender does not know).
    threshold : float > 0
        Flag rows whose score's robust z-score (median / MAD over the data) exceeds it,
        however many that is (default 3.0). Unused when ``expected_rate`` is given.
    use : {"both", "norm", "direction"}
        Which gradient statistics enter the score.
    norm_reference : {"all", "class"}
        Compare a row's gradient norm with every row (default) or only with its class. A
        gradient-matching attacker spends the whole budget on one class and can be the
        majority there (187 poisons among about 200 rows of that class in the lesson's
        fine-tuning batch): the within-class median is then a poison's norm, and the
        per-class norm score ranks poisons *below* clean rows. The direction score always
        compares within the class.

    Returns
    -------
    Detection
        ``scores`` (higher = more suspicious) and the rows flagged.

    References
    ----------
    Hong, Chandrasekaran, Kaya, Dumitras & Papernot 2020, "On the effectiveness of
    mitigating data poisoning attacks with gradient shaping", arXiv:2002.11497.

    See Also
    --------
    notebooks/04_gradient_manipulation.ipynb
    """
    if len(X) != len(y):
        raise ValueError(f"X and y must have one length, got {len(X)} and {len(y)}")
    return audit_gradients(head_gradients(model, X, y), y, expected_rate=expected_rate, threshold=threshold,
                           use=use, norm_reference=norm_reference)


def audit_gradients(grads: np.ndarray, labels: np.ndarray, *, expected_rate: Optional[float] = None,
                    threshold: float = 3.0, use: str = "both", norm_reference: str = "all") -> Detection:
    """:func:`gradient_audit` on per-sample gradients already computed (``grads`` (n, d),
    e.g. :func:`head_gradients`): the detector over arrays that the registry calls."""
    scores = audit_scores(grads, labels, use=use, norm_reference=norm_reference)
    if expected_rate is not None:
        flagged = flag_top(scores, check_rate("expected_rate", expected_rate, allow_zero=True))
    elif threshold > 0:
        flagged = robust_z(scores) > threshold
    else:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return Detection(scores, flagged, "gradient_audit", {"expected_rate": expected_rate, "threshold": threshold,
                                                         "use": use, "norm_reference": norm_reference})

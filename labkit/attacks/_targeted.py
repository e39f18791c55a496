"""What every targeted poisoning attack shares: the attacker's choice of targets and bases,
budget checks, and building the :class:`~labkit.types.PoisonedDataset`.

See Also: notebooks/03_clean_label.ipynb, notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import models
from ..rng import as_rng
from ..types import Dataset, make_poisoned

__all__ = ["choose_targets", "choose_targets_one_by_one", "choose_bases"]


def choose_targets(model: nn.Module, test: Dataset, n_targets: int, *, rng=None, exclude=()):
    """``n_targets`` random test rows that ``model`` classifies correctly (none of
    ``exclude``), and for each the class it ranks second: the easiest wrong class, which the
    attacker wants.

    Returns ``(target_idx, target_class)``, two int arrays sorted by ``target_idx``.
    """
    rng = as_rng(rng)
    P = models.predict_proba(model, test.X)
    ok = np.setdiff1d(np.flatnonzero(P.argmax(1) == test.y), np.asarray(exclude, np.int64))
    if n_targets < 1 or n_targets > ok.size:
        raise ValueError(f"n_targets must be in [1, {ok.size}], got {n_targets}")
    t = np.sort(rng.choice(ok, n_targets, replace=False))
    return t, np.argsort(P[t], 1)[:, -2]


def choose_targets_one_by_one(model: nn.Module, test: Dataset, n_targets: int, *, rng=None):
    """:func:`choose_targets` drawn one target at a time (each excluded from the next draws),
    in draw order: the order in which lesson 3's trials meet their targets."""
    rng, picked = as_rng(rng), []
    for _ in range(n_targets):
        picked.append([int(v[0]) for v in choose_targets(model, test, 1, rng=rng, exclude=[t for t, _ in picked])])
    idx, cls = np.array(picked, np.int64).reshape(-1, 2).T
    return idx, cls


def choose_bases(data: Dataset, extractor: nn.Module, x_target: np.ndarray, target_class: int,
                 n_poisons: int, *, guard: Optional[nn.Module] = None) -> np.ndarray:
    """Rows of ``target_class`` (the poisons' class) nearest to the target in feature space (sorted indices).

    With ``guard`` (a pixel classifier), only rows it gives >= 0.9 to ``target_class`` qualify
    (clearly drawn examples of their class), falling back to all rows of the class if too few.
    """
    rows = np.flatnonzero(data.y == target_class)
    if n_poisons < 1 or n_poisons > rows.size:
        raise ValueError(f"n_poisons must be in [1, {rows.size}], got {n_poisons}")
    if guard is not None:
        sure = rows[models.predict_proba(guard, data.X[rows])[:, target_class] >= 0.9]
        rows = sure if sure.size >= n_poisons else rows
    with torch.no_grad():
        f_rows = extractor(torch.tensor(data.X[rows])).numpy()
        f_t = extractor(torch.tensor(x_target[None])).numpy()
    order = np.argsort(((f_rows - f_t) ** 2).sum(1), kind="stable")
    return np.sort(rows[order[:n_poisons]])


def check_budget(eps, opacity=0.0, steps=1):
    """Raise ``ValueError`` unless ``0 < eps <= 1``, ``0 <= opacity < 1`` and ``steps >= 1``."""
    if not (isinstance(eps, (int, float)) and 0 < eps <= 1):
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if not (isinstance(opacity, (int, float)) and 0 <= opacity < 1):
        raise ValueError(f"opacity must be in [0, 1), got {opacity}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps must be a positive int, got {steps}")


def project(x, lo, hi):
    """Clip tensor ``x`` elementwise into ``[lo, hi]``."""
    return torch.maximum(torch.minimum(x, hi), lo)


def target_setup(test, target_idx, target_class):
    """Validate a target (an index into ``test``) and its wanted class; return both as ints."""
    if test is None or target_idx is None:
        raise ValueError("need test= and target_idx= (the test image to flip)")
    target_idx = int(target_idx)
    if not 0 <= target_idx < len(test):
        raise ValueError(f"target_idx must be in [0, {len(test)}), got {target_idx}")
    if target_class is None:
        raise ValueError("need target_class= (the class the target should be read as)")
    target_class = int(target_class)
    if target_class == int(test.y[target_idx]):
        raise ValueError("target_class must differ from the target's own class")
    return target_idx, target_class


def poisoned_copy(data, X_p, base_idx, target_idx, target_class, attack, params):
    """``data`` with rows ``base_idx`` replaced by ``X_p`` (labels kept), aimed at one target."""
    X = data.X.copy()
    X[base_idx] = X_p
    return make_poisoned(data, X=X, idx=base_idx, attack=attack, params=params,
                         target_idx=np.array([target_idx]), target_class=target_class)


def logit_margin(logits, y):
    """``logit[y] - max_{k != y} logit[k]`` per row: how confidently each row is read as its
    own label (negative: read as another class)."""
    own = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return own - other

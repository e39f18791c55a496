"""Label flipping: the attacker changes labels, never pixels.

Threat model: the attacker controls the labels of a fraction of the training set (a
careless or malicious annotator, a crowd-sourcing platform, a scraped dataset with
user-supplied tags). They know the data, not the victim's model.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..types import Dataset, PoisonedDataset, as_rng, make_poisoned

__all__ = ["flip_labels", "STRATEGIES"]

STRATEGIES = ("random", "targeted", "optimised")


def flip_labels(data: Dataset, *, rate: float = 0.1, strategy: str = "random",
                source_class: Optional[int] = None, target_class: Optional[int] = None,
                rng=None) -> PoisonedDataset:
    """Flip the labels of a fraction of ``data``.

    Parameters
    ----------
    data : Dataset
    rate : float in (0, 1]
        ``random`` and ``optimised``: fraction of all rows flipped.
        ``targeted``: fraction of the ``source_class`` rows relabelled ``target_class``.
    strategy : {"random", "targeted", "optimised"}
        - ``random``: rows chosen uniformly; each new label uniform over the other classes.
        - ``targeted``: class-pair flips ``source_class -> target_class``; success is the
          fraction of source-class test points predicted as ``target_class``.
        - ``optimised``: a budget-aware attack in the spirit of Xiao et al. (2012,
          "Adversarial label flips attack on support vector machines", ECAI): a surrogate
          (logistic regression on clean data) finds, for every class, the wrong class it
          most confuses it with. The attacker spends the whole budget on as few classes as
          possible, most confusable class first, relabelling its rows (the ones the
          surrogate is most sure of first) as that partner class. Consistent flips teach the
          model a wrong rule for a whole class, where scattered random flips only dent the
          neighbourhood of each flipped row; and because the flipped rows' neighbours carry
          the same wrong label, k-NN sanitisation cannot see them.
    source_class, target_class : int
        Only for ``targeted`` (defaults 3 and 8, the lesson's example).
    rng : None, int or numpy Generator

    Returns
    -------
    PoisonedDataset
        ``X`` unchanged; ``poison_idx`` = the flipped rows (every one has a new label).

    See Also
    --------
    labkit.defences.knn_sanitisation, labkit.defences.confident_learning, labkit.defences.dpa
    notebooks/01_label_flipping.ipynb

    References
    ----------
    Biggio, Nelson & Laskov 2012, arXiv:1206.6389; Xiao, Xiao & Eckert 2012 (ECAI).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not (isinstance(rate, (int, float)) and 0 < rate <= 1):
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if strategy != "targeted" and (source_class is not None or target_class is not None):
        raise ValueError("source_class/target_class only apply to strategy='targeted'")
    rng = as_rng(rng)
    y = data.y.copy()
    params = {"rate": rate, "strategy": strategy}
    extras = {}
    if strategy == "random":
        idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
        shift = rng.integers(1, data.n_classes, idx.size)  # never 0, so every label changes
        y[idx] = (y[idx] + shift) % data.n_classes
    elif strategy == "targeted":
        source_class = 3 if source_class is None else int(source_class)
        target_class = 8 if target_class is None else int(target_class)
        for c in (source_class, target_class):
            if not 0 <= c < data.n_classes:
                raise ValueError(f"class {c} out of range [0, {data.n_classes})")
        if source_class == target_class:
            raise ValueError("source_class and target_class must differ")
        rows = np.flatnonzero(y == source_class)
        idx = rng.choice(rows, int(round(rate * rows.size)), replace=False)
        y[idx] = target_class
        params.update(source_class=source_class, target_class=target_class)
        extras = {"source_class": source_class, "target_class": target_class}
    else:
        idx, new = _optimised_flips(data, int(round(rate * len(y))))
        y[idx] = new
    return make_poisoned(data, y=y, idx=np.sort(idx), attack="label_flip", params=params, **extras)


def _optimised_flips(data: Dataset, budget: int):
    """Rows and new labels for the ``optimised`` strategy (deterministic given the data).

    Notes
    -----
    The loop it stands for::

        partner[c] = the class the surrogate most confuses with c
        for c in classes, most confusable first:
            for row in class c, most confidently classified first:
                if budget left: relabel row as partner[c]
    """
    from sklearn.linear_model import LogisticRegression

    X = data.flat()
    proba = LogisticRegression(max_iter=300).fit(X, data.y).predict_proba(X)
    mean_p = np.stack([proba[data.y == c].mean(0) for c in range(data.n_classes)])
    np.fill_diagonal(mean_p, -1)
    partner = mean_p.argmax(1)
    picked = []
    for c in np.argsort(-mean_p.max(1), kind="stable"):
        rows = np.flatnonzero(data.y == c)
        rows = rows[np.argsort(-proba[rows, c], kind="stable")]
        picked.extend(rows[:budget - len(picked)])
        if len(picked) >= budget:
            break
    idx = np.array(picked, np.int64)
    return idx, partner[data.y[idx]]

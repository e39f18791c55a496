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

STRATEGIES = ("random", "targeted", "class_pair", "optimised")

#: The k-NN surrogate of ``strategy="optimised"``: neighbours per row, vote temperature and
#: flips per greedy step. Chosen on development seeds 0-4 (digits, rates 0.1 and 0.2).
OPTIMISED_K, OPTIMISED_TAU, OPTIMISED_BATCH = 10, 3.0, 5


def flip_labels(data: Dataset, *, rate: float = 0.1, strategy: str = "random",
                source_class: Optional[int] = None, target_class: Optional[int] = None,
                rng=None, progress: bool = False) -> PoisonedDataset:
    """Flip the labels of a fraction of ``data``.

    Parameters
    ----------
    data : Dataset
    rate : float in (0, 1]
        ``random``, ``class_pair`` and ``optimised``: fraction of all rows flipped.
        ``targeted``: fraction of the ``source_class`` rows relabelled ``target_class``.
    strategy : {"random", "targeted", "class_pair", "optimised"}
        - ``random``: rows chosen uniformly; each new label uniform over the other classes.
        - ``targeted``: class-pair flips ``source_class -> target_class``; success is the
          fraction of source-class test points predicted as ``target_class``.
        - ``class_pair``: a one-shot heuristic, no optimisation: a surrogate (logistic
          regression on clean data) finds, for every class, the wrong class it most
          confuses it with. The attacker spends the whole budget on as few classes as
          possible, most confusable class first, relabelling its rows (the ones the
          surrogate is most sure of first) as that partner class. Consistent flips teach the
          model a wrong rule for a whole class, where scattered random flips only dent the
          neighbourhood of each flipped row; and because the flipped rows' neighbours carry
          the same wrong label, k-NN sanitisation cannot see them.
        - ``optimised``: greedy label flips that maximise a retrained surrogate's loss on
          the attacker's own clean labels, in the spirit of Xiao, Xiao & Eckert (2012).
          The surrogate is a k-NN classifier on pixels (a model that, like the victim,
          memorises its training labels), so retraining it after a flip is exact and
          cheap: each row's vote counts change. Every step scores every candidate flip
          (row, new label) by how much it raises the surrogate's leave-one-out loss (the
          cross-entropy of its softened votes, temperature 3, at the *clean* label, summed
          over all rows), flips the best few, re-counts the votes and repeats until the
          budget is spent (:func:`_optimised_flips`). Deterministic given the data.
    source_class, target_class : int
        Only for ``targeted`` (defaults 3 and 8, the lesson's example).
    rng : None, int or numpy Generator
    progress : bool
        ``optimised`` only: a progress bar over the greedy steps, shown once it has run
        for 2 s (on digits it finishes in about a second).

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
    elif strategy == "class_pair":
        idx, new = _class_pair_flips(data, int(round(rate * len(y))))
        y[idx] = new
    else:
        idx, new = _optimised_flips(data, int(round(rate * len(y))), progress=progress)
        y[idx] = new
    return make_poisoned(data, y=y, idx=np.sort(idx), attack="label_flip", params=params, **extras)


def _class_pair_flips(data: Dataset, budget: int):
    """Rows and new labels for the ``class_pair`` heuristic (deterministic given the data).

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


def _softened_loss(votes, labels, tau: float) -> np.ndarray:
    """Per row, ``-log softmax(votes / tau)[label]``: the k-NN surrogate's smooth loss."""
    Z = votes / tau
    Z = Z - Z.max(1, keepdims=True)
    return np.log(np.exp(Z).sum(1)) - Z[np.arange(len(labels)), labels]


def _optimised_flips(data: Dataset, budget: int, *, k: int = OPTIMISED_K, tau: float = OPTIMISED_TAU,
                     batch: int = OPTIMISED_BATCH, progress: bool = False):
    """Rows and new labels for the ``optimised`` strategy: greedy flips against a k-NN surrogate.

    Notes
    -----
    The loop it stands for (``N(j)``: the ``k`` nearest other rows of row ``j``, in pixels;
    ``votes[j, c]``: how many of them currently carry label ``c``)::

        while budget left:
            for every unflipped row i, every label c != y[i]:
                gain[i, c] = sum over j with i in N(j) of
                             loss_j(votes[j] - e[y[i]] + e[c]) - loss_j(votes[j])
            flip the `batch` rows with the largest gain to their best label

    ``loss_j(v) = -log softmax(v / tau)[y_clean[j]]``. Every row's *clean* label is the
    attacker's validation target: a flip pays off when it turns the neighbourhood of
    other rows, the stand-ins for test points, against their true class. Early flips make
    the next flips nearby pay off more, so the attack grows consistent, wrongly labelled
    regions, which a model that fits its labels extends to the test points there.
    Each row is flipped at most once.
    """
    from sklearn.neighbors import NearestNeighbors

    X = data.flat().astype(np.float64)
    y0 = np.asarray(data.y)
    n, K = len(y0), data.n_classes
    budget = min(int(budget), n)
    k = min(int(k), n - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)
    # drop each row itself (the first neighbour, unless exact duplicates reorder them)
    nn = np.array([[j for j in row if j != i][:k] for i, row in enumerate(nn)], np.int64)
    J, I = np.repeat(np.arange(n), k), nn.ravel()     # edge: row I[e] is a neighbour of row J[e]
    edges = np.arange(J.size)
    y = y0.copy()
    flipped = np.zeros(n, bool)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=budget, desc="optimising label flips", leave=False, delay=2)
    while flipped.sum() < budget:
        votes = np.zeros((n, K))
        np.add.at(votes, (J, y[I]), 1)
        base = _softened_loss(votes, y0, tau)[J]
        gain = np.zeros((n, K))
        for c in range(K):
            v = votes[J]
            v[edges, y[I]] -= 1
            v[:, c] += 1
            np.add.at(gain[:, c], I, _softened_loss(v, y0[J], tau) - base)
        gain[np.arange(n), y] = -np.inf
        gain[flipped] = -np.inf
        take = min(batch, budget - int(flipped.sum()))
        rows = np.argsort(-gain.max(1), kind="stable")[:take]
        y[rows] = gain[rows].argmax(1)
        flipped[rows] = True
        if bar is not None:
            bar.update(take)
    if bar is not None:
        bar.close()
    idx = np.flatnonzero(flipped)
    return idx, y[idx]

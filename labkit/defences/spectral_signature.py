"""Spectral signatures: poisons leave a trace along the top singular vector (Tran et al. 2018).

A backdoor teaches the model a "trigger" feature. Inside the poisoned class, the rows that
carry it are shifted, together, along one direction of the penultimate representation; the
top singular vector of the class's centred representations points along that shift, and
the poisons have the largest squared projections on it.

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

from typing import Union

import numpy as np

from ..types import Detection
from .base import check_rate

__all__ = ["spectral_scores", "spectral_signature", "spectral_signature_paper", "class_whitener", "whitened_class",
           "signature_strength", "spectral_filter", "DEFAULT_EXPECTED_RATE"]

#: The defender's default contamination guess: a number the defender sets, never the attack's
#: rate (the backdoor's default rate is 0.05). Guessing high costs clean rows; guessing low
#: leaves poisons behind (notebooks/02_backdoors.ipynb measures both).
DEFAULT_EXPECTED_RATE = 0.1


def spectral_scores(reps) -> np.ndarray:
    """Tran et al.'s outlier score: squared projection on the top singular vector.

    Parameters
    ----------
    reps : array, shape (n, d)
        Representations of the rows of *one* class.

    Returns
    -------
    array, shape (n,)
        ``((reps[i] - mean(reps)) @ v) ** 2``, with ``v`` the top right singular vector of
        the centred matrix ``reps - mean(reps)``. Higher = more suspicious.

    Notes
    -----
    Centring: by the **mean of the rows given** (the class mean), as in Algorithm 1 of the
    paper; ``v`` is then the first principal axis of the class. Squaring makes the sign of
    ``v`` (which an SVD does not fix) irrelevant. The loop it stands for::

        mu = mean(reps)
        v = top right singular vector of [r - mu for r in reps]
        score[i] = dot(reps[i] - mu, v) ** 2
    """
    R = np.asarray(reps, np.float64)
    if R.ndim != 2 or len(R) < 2:
        raise ValueError(f"reps must be shaped (n, d) with n >= 2, got {R.shape}")
    C = R - R.mean(0)
    _, _, vt = np.linalg.svd(C, full_matrices=False)
    return (C @ vt[0]) ** 2


def class_whitener(features, labels, c: int, *, ridge: float = 0.01) -> np.ndarray:
    """A matrix ``W`` (d, d) that whitens the typical within-class spread, learnt without class ``c``.

    The within-class covariance is pooled over every class except ``c`` (each centred at
    its own mean), so a poisoned class ``c`` cannot hide its own signature in it;
    ``(reps - mean) @ W`` has roughly identity covariance for a clean class. ``ridge`` (a
    fraction of the largest eigenvalue) is added to every eigenvalue, so that dead ReLU
    units and near-constant directions do not blow up.

    This is a simple version of the robust whitening of SPECTRE (Hayase, Kong, Somani & Oh
    2021, arXiv:2104.11315): it relies on the other classes being mostly clean.
    """
    F = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    others = [F[labels == k] - F[labels == k].mean(0) for k in np.unique(labels) if k != c]
    if not others:
        raise ValueError("whitening needs at least one class other than the one scored")
    D = np.concatenate(others)
    w, V = np.linalg.eigh(D.T @ D / len(D))
    w = np.maximum(w, 0)
    return V / np.sqrt(w + ridge * max(w.max(), 1e-12))


def whitened_class(features, labels, c: int, *, ridge: float = 0.01) -> np.ndarray:
    """Class ``c``'s rows of ``features``, centred and whitened as by :func:`class_whitener`.

    Every detector that whitens reads only distances, inner products and singular values of
    these rows, which a rotation of the columns leaves unchanged. So when the features have
    more dimensions than the other classes have rows (TF-IDF text: thousands of words, a few
    hundred paragraphs), this returns ``(R - mean) @ class_whitener(...)`` up to such a rotation,
    computed from the other classes' ``n x n`` Gram matrix instead of a ``d x d``
    eigendecomposition (a fraction of a second instead of seconds on one CPU). Otherwise it is exactly that product.
    """
    F = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    R = F[labels == c]
    R = R - R.mean(0)
    n_other = int(np.sum(labels != c)) - (len(np.unique(labels)) - 1)   # degrees of freedom left
    if F.shape[1] <= n_other:
        return R @ class_whitener(F, labels, c, ridge=ridge)
    others = [F[labels == k] - F[labels == k].mean(0) for k in np.unique(labels) if k != c]
    if not others:
        raise ValueError("whitening needs at least one class other than the one scored")
    D = np.concatenate(others)
    # D's row space from the eigenvectors of the small Gram matrix D D^T (n x n, not d x d);
    # directions with (numerically) zero variance are left to the rest, which has eigenvalue 0
    ev, U = np.linalg.eigh(D @ D.T)
    keep = ev > 1e-10 * max(ev.max(), 1e-300)
    vt = (U[:, keep].T @ D) / np.sqrt(ev[keep])[:, None]
    w = ev[keep] / len(D)
    floor = ridge * max(w.max(), 1e-12)
    inside = R @ vt.T                                     # coordinates in D's row space
    outside = R - inside @ vt                             # what is left: eigenvalue 0 there
    return np.hstack([inside / np.sqrt(w + floor), outside / np.sqrt(floor)])


def _class_reps(F, labels, c, whiten, ridge):
    if whiten:
        return whitened_class(F, labels, c, ridge=ridge)
    return F[labels == c]


def signature_strength(features, labels, *, whiten: bool = True, ridge: float = 0.01) -> np.ndarray:
    """Per class, the top eigenvalue of the (whitened) class covariance, shape (n_classes_present,).

    ``sigma_1^2 / n_c`` of the centred class representations. With whitening, a clean class
    has values near those of its neighbours; a class holding a fraction ``eps`` of poisons
    shifted by ``delta`` gains about ``eps (1 - eps) |delta|^2``. The class with the largest
    value is the suspect. Classes are ordered as ``np.unique(labels)``.
    """
    F = np.asarray(features, np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels)
    return np.array([_strength(_class_reps(F, labels, c, whiten, ridge)) for c in np.unique(labels)])


def _strength(R) -> float:
    """``sigma_1^2 / n`` of the centred rows ``R`` (0 for fewer than two rows)."""
    if len(R) < 2:
        return 0.0
    return float(np.linalg.svd(R - R.mean(0), compute_uv=False)[0] ** 2 / len(R))


def spectral_filter(reps, k: int, *, rounds: int = 3) -> np.ndarray:
    """Rows to remove: the ``k`` most suspicious, taken in ``rounds`` passes, shape (k,).

    Each pass removes about ``k / rounds`` rows with the largest :func:`spectral_scores`
    and recomputes the scores (and the singular vector) on the rows left. ``rounds=1`` is
    the paper's one-shot rule. Several passes help when poisons are a large share of the
    class: once the most extreme ones are gone, the top singular vector re-aims at the rest.
    """
    R = np.asarray(reps, np.float64)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    k = min(int(k), len(R))
    left = np.arange(len(R))
    removed = []
    for r in range(rounds):
        take = int(np.ceil((k - len(removed)) / (rounds - r)))
        if take <= 0 or left.size < 2:
            break
        order = np.argsort(-spectral_scores(R[left]), kind="stable")[:take]
        removed.extend(left[order])
        left = np.delete(left, order)
    return np.sort(np.array(removed, np.int64))


def spectral_signature(features, labels, *, expected_rate: float = DEFAULT_EXPECTED_RATE,
                       classes: Union[str, int] = "auto", whiten: bool = True,
                       ridge: float = 0.01, removal_factor: float = 1.5,
                       rounds: int = 3) -> Detection:
    """Flag the rows with the largest spectral scores in the suspected class (the lab's rule).

    The lab's variant of Tran et al.'s defence: whitened representations, one suspect class
    chosen automatically, removal in several passes. :func:`spectral_signature_paper` is the
    paper's rule, for comparison.

    Parameters
    ----------
    features : array, shape (n, d)
        Penultimate-layer representations (:func:`labkit.models.embed`) of the training rows,
        from the model trained on them.
    labels : array of int, shape (n,)
        The training labels as given (poisons carry the attacker's label).
    expected_rate : float in (0, 1]
        A contamination guess the defender sets: the fraction of the *whole training set*
        they believe is poisoned (the paper's epsilon). Default
        :data:`DEFAULT_EXPECTED_RATE` (0.1), not the attack's rate, which a defender does
        not know. ``ceil(removal_factor * expected_rate * n)`` rows are removed, as Tran
        et al. remove 1.5 epsilon (at most half of the suspect class with ``"auto"`` or an
        int: a guess that is too high then costs clean rows of that class, not the class).
    classes : "auto", "all" or int
        Where to look. ``"auto"``: the one class with the largest
        :func:`signature_strength` (an all-to-one backdoor puts every poison in one
        class). ``"all"``: the paper's per-class rule, removing the top
        ``removal_factor * expected_rate`` fraction of *every* class. An int: that class.
    whiten : bool
        Score ``(reps - class mean) @ class_whitener(...)`` instead of the raw
        representations, so that the directions in which every class naturally varies do
        not outshine the poisons' shift (the lesson's variant; the paper scores raw
        representations).
    ridge : float
        See :func:`class_whitener`.
    removal_factor : float
        1.5 in the paper.
    rounds : int
        Remove the rows in this many passes, recomputing the singular vector after each
        (:func:`spectral_filter`); 1 is the paper's one-shot rule. When the poisons are a
        large share of their class, one pass can leave a few behind, enough for a retrained
        model to keep the backdoor; notebooks/02_backdoors.ipynb measures both.

    Returns
    -------
    Detection
        ``scores``: each row's one-shot spectral score within its own class (whitened
        scores share one scale across classes); ``flagged``: the rows
        :func:`spectral_filter` removes from the suspected class.

    Notes
    -----
    Centring is by the **class mean** (see :func:`spectral_scores`); with ``whiten=True``
    the class mean is subtracted first and the whitened rows are centred again (a no-op).
    Spectral signatures weaken at very low rates: the shift adds about
    ``eps (1 - eps) |delta|^2`` to the class's top eigenvalue, which at small ``eps`` no
    longer stands out against clean classes, so ``"auto"`` picks the wrong class. At
    ``eps = 1/2`` of a class the two groups sit symmetrically about the mean and squared
    projections cannot tell them apart.

    References
    ----------
    Tran, Li & Madry 2018, "Spectral signatures in backdoor attacks", NeurIPS,
    arXiv:1811.00636.

    See Also
    --------
    labkit.defences.activation_clustering, notebooks/02_backdoors.ipynb
    """
    check_rate("expected_rate", expected_rate)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if removal_factor <= 0:
        raise ValueError(f"removal_factor must be > 0, got {removal_factor}")
    labels = np.asarray(labels)
    F = np.asarray(features, np.float64).reshape(len(labels), -1)
    present = np.unique(labels)
    scores = np.zeros(len(labels))
    reps = {}
    for c in present:
        rows = np.flatnonzero(labels == c)
        if rows.size > 1:
            reps[c] = _class_reps(F, labels, c, whiten, ridge)
            scores[rows] = spectral_scores(reps[c])
    flagged = np.zeros(len(labels), bool)
    if classes == "all":
        for c in reps:
            rows = np.flatnonzero(labels == c)
            k = min(rows.size, int(np.ceil(removal_factor * expected_rate * rows.size - 1e-9)))
            flagged[rows[spectral_filter(reps[c], k, rounds=rounds)]] = True
        suspect = None
    else:
        if classes == "auto":
            # signature_strength, from the class representations computed above
            suspect = int(present[np.argmax([_strength(reps[c]) if c in reps else 0.0 for c in present])])
        elif isinstance(classes, (int, np.integer)) and classes in present:
            suspect = int(classes)
        else:
            raise ValueError(f"classes must be 'auto', 'all' or a label present in the data, got {classes!r}")
        rows = np.flatnonzero(labels == suspect)
        # never more than half the suspect class: poisons that were most of a class would
        # define it, and a larger guess should not throw the clean class away with them
        k = min(rows.size // 2, int(np.ceil(removal_factor * expected_rate * len(labels) - 1e-9)))
        if rows.size > 1:
            flagged[rows[spectral_filter(reps[suspect], k, rounds=rounds)]] = True
    return Detection(scores=scores, flagged=flagged, defence="spectral_signature",
                     params={"expected_rate": expected_rate, "classes": classes, "whiten": whiten,
                             "ridge": ridge, "removal_factor": removal_factor, "rounds": rounds,
                             "suspect_class": suspect})


def spectral_signature_paper(features, labels, *, expected_rate: float = DEFAULT_EXPECTED_RATE,
                             removal_factor: float = 1.5) -> Detection:
    """Tran et al.'s rule as published: per class, remove the ``1.5 epsilon n_c`` top scores.

    Every class is scored on its raw (not whitened) representations, centred at the class
    mean, along its top singular vector (:func:`spectral_scores`), and the
    ``ceil(removal_factor * expected_rate * n_c)`` rows with the largest scores of *every*
    class are removed in one pass. The same as ``spectral_signature(..., classes="all",
    whiten=False, rounds=1)``; the defender needs no idea which class is poisoned, and
    pays for it with clean rows removed from every clean class.

    Parameters
    ----------
    features, labels : as for :func:`spectral_signature`.
    expected_rate : float in (0, 1]
        The defender's contamination guess (epsilon); default :data:`DEFAULT_EXPECTED_RATE`.
    removal_factor : float
        1.5 in the paper.

    References
    ----------
    Tran, Li & Madry 2018, "Spectral signatures in backdoor attacks", NeurIPS,
    arXiv:1811.00636, Algorithm 1.
    """
    det = spectral_signature(features, labels, expected_rate=expected_rate, classes="all",
                             whiten=False, removal_factor=removal_factor, rounds=1)
    return Detection(scores=det.scores, flagged=det.flagged, defence="spectral_signature_paper",
                     params={"expected_rate": expected_rate, "removal_factor": removal_factor,
                             "rule": "paper"})

"""Activation clustering: inside a poisoned class, the model's activations split in two (Chen et al. 2018).

The model reads a triggered "3 labelled 0" as a 0 for a different reason (the trigger)
than a real 0 (its shape). Clustering each class's penultimate activations into two groups
separates the reasons; a clean class splits into two similar halves, a poisoned class into
its real members and a small, well separated group of poisons.

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

import numpy as np

from ..types import Detection, as_rng
from .spectral_signature import whitened_class

__all__ = ["activation_clustering", "split_class", "REDUCERS"]

REDUCERS = ("pca", "ica")


def split_class(reps, *, n_components: int = 10, reduce: str = "pca", rng=None):
    """Reduce one class's representations and split them with 2-means.

    Parameters
    ----------
    reps : array, shape (n, d)
    n_components : int
        Dimensions kept (10 in the paper); capped at ``min(n, d)``.
    reduce : {"pca", "ica"}
    rng : None, int or Generator
        Seeds the reducer and k-means.

    Returns
    -------
    in_small : array of bool, shape (n,)
        Membership of the smaller cluster.
    relative_size : float
        Size of the smaller cluster over ``n``.
    silhouette : float
        Mean silhouette of the split (in the reduced space), in [-1, 1]; higher = the two
        clusters are better separated.
    lean : array, shape (n,)
        ``(d_big - d_small) / (d_big + d_small)`` in [-1, 1]: how much closer each row is to
        the smaller cluster's centre than to the bigger one's.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA, FastICA
    from sklearn.metrics import silhouette_score

    if reduce not in REDUCERS:
        raise ValueError(f"reduce must be one of {REDUCERS}, got {reduce!r}")
    R = np.asarray(reps, np.float64)
    if R.ndim != 2 or len(R) < 3:
        raise ValueError(f"reps must be shaped (n, d) with n >= 3, got {R.shape}")
    seed = int(as_rng(rng).integers(2**31 - 1))
    k = max(1, min(n_components, R.shape[0] - 1, R.shape[1]))
    if reduce == "pca":
        Z = PCA(k, random_state=seed).fit_transform(R)
    else:
        # Whiten with PCA first, then unmix the k white components. FastICA's own whitening
        # (whiten="unit-variance") can return NaN sources on penultimate activations with
        # dead ReLU units (about one fit in five on the rate-0.10 backdoor's raw class
        # activations), which k-means then rejects.
        Z = PCA(k, whiten=True, random_state=seed).fit_transform(R)
        Z = FastICA(k, random_state=seed, max_iter=1000, whiten=False).fit_transform(Z)
    if not np.isfinite(Z).all():
        raise FloatingPointError(f"{reduce} returned non-finite components for reps of shape {R.shape}")
    km = KMeans(2, n_init=10, random_state=seed).fit(Z)
    counts = np.bincount(km.labels_, minlength=2)
    small = int(np.argmin(counts))
    in_small = km.labels_ == small
    if counts.min() == 0:
        return in_small, 0.0, -1.0, -np.ones(len(R))
    d = np.linalg.norm(Z[:, None, :] - km.cluster_centers_[None], axis=2)
    d_small, d_big = d[:, small], d[:, 1 - small]
    lean = (d_big - d_small) / np.maximum(d_big + d_small, 1e-12)
    return in_small, float(counts.min() / len(R)), float(silhouette_score(Z, km.labels_)), lean


def activation_clustering(features, labels, *, n_components: int = 10, reduce: str = "pca",
                          max_size: float = 0.35, min_silhouette: float = 0.40,
                          whiten: bool = True, ridge: float = 0.01, rng=None) -> Detection:
    """Per class, split the activations in two; flag the smaller cluster of classes that split cleanly.

    Parameters
    ----------
    features : array, shape (n, d)
        Penultimate-layer activations (:func:`labkit.models.embed`) of the training rows,
        from the model trained on them.
    labels : array of int, shape (n,)
        The training labels as given.
    n_components : int
        Dimensions kept by the reducer (10 in the paper).
    reduce : {"pca", "ica"}
    max_size : float
        "Relative size" rule: a class is suspect only if its smaller cluster holds at most
        this fraction of it (the paper's rule of thumb is 0.35).
    min_silhouette : float
        "Silhouette" rule: ... and only if the split is this well separated. Clean digit
        classes split at 0.15-0.35 after whitening, poisoned ones at 0.5-0.6.
    whiten : bool
        Whiten each class by the within-class spread of the *other* classes first
        (:func:`labkit.defences.spectral_signature.class_whitener`), so that a clean class
        with two writing styles does not split as cleanly as a poisoned one.
    ridge : float
        See ``class_whitener``.
    rng : None, int or Generator
        Seeds the reducer and k-means.

    Returns
    -------
    Detection
        ``scores``: ``silhouette_c * (1 + lean) / 2`` (high for rows near the smaller
        cluster of a cleanly split class); ``flagged``: the smaller clusters of the classes
        that pass both rules. ``params["per_class"]`` lists each class's relative size and
        silhouette.

    Notes
    -----
    The "smaller cluster" rule assumes poisons are a minority of their (target) class. An
    all-to-one backdoor at rate 0.10 on digits makes them about half of class 0: the split
    is still clean (high silhouette), but neither cluster is small, so nothing is flagged,
    or, with ``max_size=0.5``, the *clean* half is. Chen et al. propose exclusionary
    reclassification for this case.

    References
    ----------
    Chen, Carvalho, Baracaldo, Ludwig, Edwards, Lee, Molloy & Srivastava 2018, "Detecting
    backdoor attacks on deep neural networks by activation clustering", AAAI SafeAI
    workshop, arXiv:1811.03728.

    See Also
    --------
    labkit.defences.spectral_signature, notebooks/02_backdoors.ipynb
    """
    if not 0 < max_size <= 0.5:
        raise ValueError(f"max_size must be in (0, 0.5], got {max_size}")
    if not -1 <= min_silhouette <= 1:
        raise ValueError(f"min_silhouette must be in [-1, 1], got {min_silhouette}")
    labels = np.asarray(labels)
    F = np.asarray(features, np.float64).reshape(len(labels), -1)
    rng = as_rng(rng)
    scores = np.zeros(len(labels))
    flagged = np.zeros(len(labels), bool)
    per_class = {}
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if rows.size < 3:
            continue
        R = F[rows]
        if whiten:
            R = whitened_class(F, labels, c, ridge=ridge)
        in_small, size, sil, lean = split_class(R, n_components=n_components, reduce=reduce, rng=rng)
        scores[rows] = max(sil, 0.0) * (1 + lean) / 2
        suspect = size <= max_size and sil >= min_silhouette
        if suspect:
            flagged[rows[in_small]] = True
        per_class[int(c)] = {"relative_size": round(size, 4), "silhouette": round(sil, 4),
                             "suspect": bool(suspect)}
    return Detection(scores=scores, flagged=flagged, defence="activation_clustering",
                     params={"n_components": n_components, "reduce": reduce, "max_size": max_size,
                             "min_silhouette": min_silhouette, "whiten": whiten, "ridge": ridge,
                             "per_class": per_class})

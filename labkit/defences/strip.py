"""STRIP: reject inputs whose prediction survives being mixed with other images (Gao et al. 2019).

An inference-time detector: it looks at *test inputs*, not training rows. Superimpose an
input on a handful of clean images and classify every blend. A clean input loses its
identity in the mixture, so the predictions scatter (high entropy); a triggered input
keeps its trigger, and the trigger keeps dragging every blend to the target class (low
entropy). Inputs whose mean entropy falls below a threshold are rejected.

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Dataset, PoisonedDataset, as_rng
from .base import check_rate

__all__ = ["strip", "strip_entropy", "superimpose", "StripFilter", "strip_report", "BLENDS"]

BLENDS = ("add", "mean")


def superimpose(X, overlays, *, blend: str = "add") -> np.ndarray:
    """Every input mixed with every overlay, shape ``(n_inputs, n_overlays, C, H, W)``.

    ``blend="add"``: ``clip(x + o, 0, 1)``, the paper's ``addWeighted(x, 1, o, 1)``: both
    images keep full strength, so a saturated patch trigger survives intact.
    ``blend="mean"``: ``(x + o) / 2``.
    """
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    X = np.asarray(X, np.float32)[:, None]
    O = np.asarray(overlays, np.float32)[None]
    return np.clip(X + O, 0, 1) if blend == "add" else (X + O) / 2


def strip_entropy(model, X, overlays, *, blend: str = "add", batch: int = 256) -> np.ndarray:
    """Mean prediction entropy of each input over its superimpositions, shape (n,).

    For input ``i``: ``H_i = mean_j entropy(softmax(model(superimpose(x_i, o_j))))``, the
    entropy taken over **classes** for each blend, then averaged over the blends (nats;
    at most ``log(n_classes)``). Lower = more suspicious.
    """
    from ..models import predict_proba

    X = np.asarray(X, np.float32)
    overlays = np.asarray(overlays, np.float32)
    if len(overlays) == 0:
        raise ValueError("need at least one overlay image")
    out = np.zeros(len(X))
    for s in range(0, len(X), batch):
        mixed = superimpose(X[s:s + batch], overlays, blend=blend)
        nb, no = mixed.shape[:2]
        p = predict_proba(model, mixed.reshape(nb * no, *mixed.shape[2:])).reshape(nb, no, -1)
        h = -(p * np.log(np.clip(p, 1e-12, 1))).sum(-1)      # over classes
        out[s:s + batch] = h.mean(1)                           # over overlays
    return out


@dataclass(frozen=True, eq=False)
class StripFilter:
    """A model guarded by STRIP: ``predict`` answers -1 ("rejected") for suspicious inputs.

    Attributes
    ----------
    model : the guarded classifier.
    overlays : array (n_overlays, C, H, W), the clean images blended in.
    threshold : float, entropy (nats) below which an input is rejected.
    blend : {"add", "mean"}
    """

    model: object
    overlays: np.ndarray
    threshold: float
    blend: str = "add"

    def __repr__(self) -> str:
        return (f"StripFilter(n_overlays={len(self.overlays)}, threshold={self.threshold:.3f}, "
                f"blend={self.blend!r})")

    def entropy(self, X) -> np.ndarray:
        """Mean entropy of each input over the overlays, shape (n,)."""
        return strip_entropy(self.model, X, self.overlays, blend=self.blend)

    def scores(self, X) -> np.ndarray:
        """Suspicion, shape (n,): ``-entropy`` (higher = more suspicious)."""
        return -self.entropy(X)

    def rejects(self, X) -> np.ndarray:
        """True where the input is rejected (entropy below the threshold), shape (n,)."""
        return self.entropy(X) < self.threshold

    def predict(self, X) -> np.ndarray:
        """The model's labels, with -1 for rejected inputs (a rejection is never an answer)."""
        from ..models import predict

        pred = np.asarray(predict(self.model, X)).copy()
        pred[self.rejects(X)] = -1
        return pred

    def with_threshold(self, threshold: float) -> "StripFilter":
        """The same filter with another threshold (for threshold widgets and ROC sweeps)."""
        return StripFilter(self.model, self.overlays, float(threshold), self.blend)


def strip(data: Dataset, model, *, n_overlays: int = 20, n_calibration: int = 200,
          frr: float = 0.05, blend: str = "add", rng=None) -> StripFilter:
    """Build a STRIP filter for ``model`` from the defender's own data.

    Parameters
    ----------
    data : Dataset
        Images the defender holds (the training set as given); mostly clean.
    model : nn.Module
        The model to guard.
    n_overlays : int
        Images drawn from ``data`` to blend each input with (Gao et al. use 100 on
        CIFAR-10; 20 is plenty for 8x8 digits).
    n_calibration : int
        Further images from ``data`` whose entropies set the threshold.
    frr : float in (0, 1)
        Target false rejection rate on clean inputs.
    blend : {"add", "mean"}
        See :func:`superimpose`.
    rng : None, int or Generator
        Which rows become overlays and calibration inputs.

    Returns
    -------
    StripFilter

    Notes
    -----
    Threshold: Gao et al. fit a normal distribution to clean entropies and cut at the
    ``frr`` quantile. The defender's data may hold poisons (whose entropy is low), so the
    normal is fitted robustly: ``threshold = median - z_(1-frr) * 1.4826 * MAD``.

    References
    ----------
    Gao, Xu, Wang, Chen, Ranasinghe & Nepal 2019, "STRIP: a defence against trojan attacks
    on deep neural networks", ACSAC, arXiv:1902.06531.

    See Also
    --------
    notebooks/02_backdoors.ipynb
    """
    from scipy.stats import norm

    check_rate("frr", frr)
    if frr >= 1:
        raise ValueError(f"frr must be in (0, 1), got {frr}")
    if n_overlays < 1 or n_calibration < 2:
        raise ValueError(f"need n_overlays >= 1 and n_calibration >= 2, got {n_overlays}, {n_calibration}")
    if n_overlays + n_calibration > len(data):
        raise ValueError(f"n_overlays + n_calibration = {n_overlays + n_calibration} exceeds the "
                         f"{len(data)} rows available")
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    rows = as_rng(rng).permutation(len(data))
    overlays = data.X[rows[:n_overlays]]
    calib = data.X[rows[n_overlays:n_overlays + n_calibration]]
    h = strip_entropy(model, calib, overlays, blend=blend)
    med = float(np.median(h))
    mad = float(np.median(np.abs(h - med)))
    threshold = med - norm.ppf(1 - frr) * 1.4826 * mad
    return StripFilter(model, np.array(overlays), float(threshold), blend)


def strip_report(guard: StripFilter, test: Dataset, poisoned: PoisonedDataset) -> dict:
    """How well ``guard`` separates triggered from clean test inputs (a measurement).

    Returns ``frr`` (clean test inputs rejected), ``far`` (triggered non-target test inputs
    accepted), ``auroc`` (suspicion of triggered vs clean inputs) and the ``threshold``.
    """
    from ..metrics import auroc

    if poisoned.trigger is None:
        raise ValueError("STRIP measures backdoors: the poisoned data carries no trigger")
    triggered = poisoned.trigger(test.X[test.y != poisoned.target_class])
    s_clean, s_trig = guard.scores(test.X), guard.scores(triggered)
    t = -guard.threshold
    return {"frr": float((s_clean > t).mean()), "far": float((s_trig <= t).mean()),
            "auroc": auroc(np.concatenate([s_clean, s_trig]),
                           np.r_[np.zeros(s_clean.size, bool), np.ones(s_trig.size, bool)]),
            "threshold": guard.threshold}

"""Monitoring a model release: compare a candidate against a trusted reference, and screen
live traffic for trigger-carrying inputs.

Three checks, each with an explicit threshold that raises a named alert:

``canary``
    On a held-out *clean* canary set: per-class accuracy of candidate vs reference, and a
    two-sample Kolmogorov-Smirnov test on the candidate's top-class confidences. A release
    that got worse on clean data fails here; a backdoored one usually does **not**.
``traffic_drift``
    On the traffic both models see: the population stability index (PSI) between the
    classes the reference and the candidate predict. A backdoor that fires on triggered
    traffic moves predictions into its target class.
``trigger_screen``
    STRIP (Gao et al. 2019) on every traffic input; the share rejected is compared with the
    share it rejects on the clean canary (at least the calibrated false-rejection rate),
    with a one-sided binomial test.

See Also: notebooks/05_defence_in_depth.ipynb, labkit.defences.strip
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models import predict, predict_proba
from ..types import Dataset

__all__ = ["psi", "monitor", "MonitorReport", "THRESHOLDS", "simulate_traffic"]

#: Default alert thresholds: PSI > 0.1 is the usual "investigate" level (0.25: "act").
THRESHOLDS = {"class_accuracy_drop": 0.1, "ks_pvalue": 0.01, "psi": 0.1, "screen_pvalue": 1e-5}


def psi(expected, actual, *, n_classes: int, floor: float = 1e-3) -> float:
    """Population stability index between two label samples: ``sum (a - e) ln(a / e)``
    over class shares ``e`` (expected) and ``a`` (actual), each floored at ``floor``."""
    e = np.bincount(np.asarray(expected), minlength=n_classes) / max(len(expected), 1)
    a = np.bincount(np.asarray(actual), minlength=n_classes) / max(len(actual), 1)
    e, a = np.maximum(e, floor), np.maximum(a, floor)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class MonitorReport:
    """Measured values and the alerts they raised (empty = release looks fine)."""

    alerts: tuple
    values: dict = field(default_factory=dict)

    @property
    def quiet(self) -> bool:
        return not self.alerts

    def __repr__(self) -> str:
        return f"MonitorReport(alerts={list(self.alerts)})"


def monitor(reference, candidate, *, canary: Dataset, traffic, trusted: Dataset,
            thresholds: dict | None = None, screen_frr: float = 0.05, rng=None) -> MonitorReport:
    """Compare ``candidate`` with ``reference`` and screen ``traffic``; raise alerts.

    Parameters
    ----------
    reference : model
        The model currently trusted in production.
    candidate : nn.Module
        The release under review.
    canary : Dataset
        Clean, labelled inputs kept aside by the team (never used for training).
    traffic : array, shape (n, C, H, W)
        Inputs the models received (unlabelled).
    trusted : Dataset
        Clean data for the STRIP screen's overlays and calibration, from the same
        distribution as the traffic (e.g. another held-out set; not the training set, which
        the model has memorised).
    thresholds : dict, optional
        Overrides of :data:`THRESHOLDS`.
    screen_frr : float
        The false-rejection rate the STRIP screen is calibrated to on ``trusted``; the
        alert fires when traffic is rejected significantly more often.
    rng : None, int or Generator
        Seeds the STRIP screen.

    Returns
    -------
    MonitorReport
    """
    from scipy.stats import binomtest, ks_2samp

    from .strip import strip

    th = {**THRESHOLDS, **(thresholds or {})}
    alerts, values = [], {}
    ref_pred, cand_pred = predict(reference, canary.X), predict(candidate, canary.X)
    per_class = np.array([(cand_pred[canary.y == c] == c).mean() - (ref_pred[canary.y == c] == c).mean()
                          for c in range(canary.n_classes) if (canary.y == c).any()])
    values["worst_class_accuracy_change"] = float(per_class.min())
    if per_class.min() < -th["class_accuracy_drop"]:
        alerts.append("canary: a class lost accuracy")
    conf_ref = predict_proba(reference, canary.X).max(1) if hasattr(reference, "parameters") else None
    if conf_ref is not None:
        p = float(ks_2samp(conf_ref, predict_proba(candidate, canary.X).max(1)).pvalue)
        values["confidence_ks_pvalue"] = p
        if p < th["ks_pvalue"]:
            alerts.append("canary: confidence distribution shifted")
    traffic = np.asarray(traffic, np.float32)
    values["traffic_psi"] = psi(predict(reference, traffic), predict(candidate, traffic),
                                n_classes=canary.n_classes)
    if values["traffic_psi"] > th["psi"]:
        alerts.append("traffic_drift: predicted classes moved")
    guard = strip(trusted, candidate, frr=screen_frr, rng=rng)
    n_rejected = int(guard.rejects(traffic).sum())
    values["screen_rejected"] = n_rejected / len(traffic)
    values["screen_rejected_canary"] = float(guard.rejects(canary.X).mean())
    expected = min(max(screen_frr, values["screen_rejected_canary"]), 0.5)
    p = float(binomtest(n_rejected, len(traffic), expected, alternative="greater").pvalue)
    values["screen_pvalue"] = p
    if p < th["screen_pvalue"]:
        alerts.append("trigger_screen: too many low-entropy inputs")
    return MonitorReport(tuple(alerts), values)


def simulate_traffic(inputs: Dataset, trigger=None, *, share: float = 0.2, rng=None) -> np.ndarray:
    """Inputs arriving at a deployed model: ``inputs.X`` with a ``share`` of them carrying
    ``trigger`` (a function stamping images, e.g. ``PoisonedDataset.trigger``); no trigger
    means clean traffic. Returns an array shaped like ``inputs.X``."""
    from ..types import as_rng

    X = np.array(inputs.X, copy=True)
    if trigger is not None:
        hit = as_rng(rng).random(len(X)) < share
        X[hit] = trigger(X[hit])
    return X

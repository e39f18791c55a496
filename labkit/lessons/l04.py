"""Lesson 4, gradient manipulation: brewing poisons for several targets, testing victims on
them, the DP-SGD curve, the gradient audit of the fine-tuning batches, the federated table,
the widget callbacks and the exercises.

The methods are :func:`labkit.attacks.match_gradients` (crafting),
:func:`labkit.attacks.random_noise` (the control), :mod:`labkit.federated` and the defences.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import metrics, models
from ..attacks import match_gradients, random_noise
from ..attacks._targeted import choose_targets
from ..attacks.gradient_matching import linear_guard
from .exercises import exercise
from ..defences.dp_sgd import dp_sgd
from ..federated import federated_train
from ..types import Dataset, make_poisoned

__all__ = ["Brew", "brew", "train_victim", "evaluate", "audit_batches", "dp_sgd_curve", "try_target",
           "federated_table", "KRUM_UPDATES"]


@dataclass(frozen=True, repr=False, eq=False)
class Brew:
    """Poisons brewed for several targets, with everything needed to test victims on them.

    ``poisons[j]`` and ``controls[j]`` (random +-eps noise on the same rows) belong to target
    ``j``; ``rows[j]`` are the rows the victim learns from (the fine-tuning batch, or the
    whole training set for ``victim="scratch"``).
    """

    split: tuple
    deployed: nn.Module
    poisons: list
    controls: list
    rows: list
    settings: dict
    craft_seconds: list
    histories: list

    def __repr__(self) -> str:
        return (f"Brew(dataset={self.split[0].name!r}, n_targets={len(self.poisons)}, "
                f"victim={self.settings['victim']!r}, n_poison={self.poisons[0].n_poison})")


def brew(split, *, n_targets: int = 10, rate: float = 0.05, eps: float = 0.15,
         victim: str = "finetune", n_clean: int = 300, finetune_epochs: int = 1,
         ensemble: int = 1, guard: bool = True, seed: int = 0, train_kw: Optional[dict] = None,
         progress: bool = False, **craft_kw) -> Brew:
    """Train (or take) the deployed model, draw ``n_targets`` targets, craft their poisons.

    Parameters
    ----------
    split : Split
        ``(train, test)``.
    n_targets : int
        Random test points the deployed model gets right; the adversarial class of each is
        the model's runner-up class.
    rate, eps : float
        Budget (fraction of the training set) and L-inf bound.
    victim : {"finetune", "scratch"}
        ``finetune``: the victim makes one pass (``finetune_epochs``) over a new batch of
        the poisons plus ``n_clean`` replayed clean rows, starting from the deployed model,
        whose weights the attacker knows. ``scratch``: the victim retrains on the whole
        poisoned training set from its own initialisation; the attacker matches gradients on
        ``ensemble`` surrogates trained with seeds the victim does not use.
    guard : bool
        Also keep the poisons' labels plausible to a linear classifier of the attacker's own
        (:func:`linear_guard`), not only to the surrogate.
    seed : int
        Seeds the deployed model, the targets, the crafting and the victims' batches.
    train_kw : dict
        Extra :func:`labkit.models.train` settings (e.g. ``model="cnn"``).
    **craft_kw
        Passed to :func:`match_gradients` (``steps``, ``restarts``, ``bases``,
        ``objective``, ``keep_label``).
    """
    if victim not in ("finetune", "scratch"):
        raise ValueError(f"victim must be 'finetune' or 'scratch', got {victim!r}")
    train, test = split
    train_kw = dict(train_kw or {})
    rng = np.random.default_rng(seed)
    deployed = models.train(train, seed=seed, **train_kw)
    if victim == "finetune":
        surrogates = [deployed]
    else:
        surrogates = [models.train(train, seed=seed + 1000 + k, **train_kw) for k in range(ensemble)]
    targets, classes = choose_targets(surrogates[0], test, n_targets, rng=rng)
    if guard:
        craft_kw["guards"] = [linear_guard(train, seed=seed)]
    poisons, controls, rows, secs, hists = [], [], [], [], []
    for j, (t, a) in enumerate(zip(targets, classes)):
        t0 = time.perf_counter()
        hist = []
        pd = match_gradients(train, test=test, target_idx=int(t), target_class=int(a),
                             surrogates=surrogates, rate=rate, eps=eps, rng=rng,
                             batch_clean=n_clean if victim == "finetune" else 0,
                             progress=progress, history=hist, **craft_kw)
        secs.append(time.perf_counter() - t0)
        hists.append(hist)
        poisons.append(pd)
        controls.append(random_noise(pd, eps=eps, rng=rng))
        if victim == "finetune":
            rest = np.setdiff1d(np.arange(len(train)), pd.poison_idx)
            extra = np.random.default_rng(seed + 7 + j).choice(rest, n_clean, replace=False)
            rows.append(np.concatenate([pd.poison_idx, np.sort(extra)]))
        else:
            rows.append(np.arange(len(train)))
    settings = {"victim": victim, "n_clean": n_clean, "finetune_epochs": finetune_epochs,
                "ensemble": ensemble, "guard": guard, "seed": seed, "train_kw": train_kw, "rate": rate,
                "eps": eps, **{k: v for k, v in craft_kw.items() if k != "guards"}}
    return Brew(split, deployed, poisons, controls, rows, settings, secs, hists)


def train_victim(b: Brew, j: int, data: Dataset, rows=None, **train_kw) -> nn.Module:
    """The victim of target ``j`` learning from ``data.subset(rows)`` (default ``b.rows[j]``)."""
    rows = b.rows[j] if rows is None else rows
    st = b.settings
    kw = {**st["train_kw"], **train_kw}
    if st["victim"] == "finetune":
        kw.pop("model", None)       # the victim fine-tunes the deployed model ...
        kw.pop("epochs", None)      # ... for finetune_epochs
        return models.fine_tune(b.deployed, data, rows, epochs=st["finetune_epochs"], seed=st["seed"] + j, **kw)
    return models.train(data.subset(rows), seed=st["seed"] + j, **kw)


def _adversarial_prob(net: nn.Module, test: Dataset, pd) -> float:
    """``net``'s probability of the adversarial class on ``pd``'s target."""
    t, a = int(pd.target_idx[0]), int(pd.target_class[0])
    return float(models.predict_proba(net, test.X[t:t + 1])[0, a])


def evaluate(b: Brew, *, control: bool = True, **train_kw) -> dict:
    """Train one victim per target (with ``train_kw``, e.g. a defence's ``aggregate``).

    Returns
    -------
    dict
        ``success`` (fraction of targets classified as their adversarial class),
        ``control_success`` (the same with the noise control; ``None`` if ``control=False``),
        ``clean_accuracy`` (victims' mean test accuracy), ``hits`` (per target),
        ``prob`` / ``control_prob`` (per target, the victim's probability of the
        adversarial class on the target: a finer measure than flipped or not),
        ``label_agreement`` (the worst target's :func:`labkit.metrics.label_consistency`).
    """
    test = b.split[1]
    reference = metrics.held_out(test, np.concatenate([pd.target_idx for pd in b.poisons]))   # no target
    hits, accs, ctrl, prob, ctrl_prob = [], [], [], [], []
    for j, pd in enumerate(b.poisons):
        net = train_victim(b, j, pd, **train_kw)
        hits.append(metrics.attack_success_rate(net, pd, test))
        accs.append(metrics.clean_accuracy(net, test))
        prob.append(_adversarial_prob(net, test, pd))
        if control:
            cnet = train_victim(b, j, b.controls[j], **train_kw)
            ctrl.append(metrics.attack_success_rate(cnet, pd, test))
            ctrl_prob.append(_adversarial_prob(cnet, test, pd))
    return {"success": float(np.mean(hits)), "control_success": float(np.mean(ctrl)) if control else None,
            "clean_accuracy": float(np.mean(accs)), "hits": hits, "prob": prob,
            "control_prob": ctrl_prob if control else None,
            "label_agreement": float(min(metrics.label_consistency(pd, reference) for pd in b.poisons))}


def audit_batches(b: Brew, *, expected_rate: Optional[float] = None, threshold: float = 3.0, **kw) -> dict:
    """Run :func:`labkit.defences.gradient_audit.gradient_audit` on every victim batch
    (per-sample gradients at the deployed model), drop what it flags, retrain the victims.

    The defender does not know how many rows are poisons: by default the audit flags every
    row whose suspicion is more than ``threshold`` robust standard deviations out;
    ``expected_rate`` instead removes that fraction of each batch (a guess).

    Returns the mean detection report, ``success`` / ``clean_accuracy`` after repair, and per
    target the ``detections`` and the batches' ground truth ``is_poison`` (for plots only).
    """
    from ..defences.gradient_audit import gradient_audit

    test = b.split[1]
    reports, hits, accs, dets, masks = [], [], [], [], []
    for j, pd in enumerate(b.poisons):
        rows = b.rows[j]
        batch = make_poisoned(pd.clean.subset(rows), X=pd.X[rows], idx=np.flatnonzero(np.isin(rows, pd.poison_idx)),
                              attack=pd.attack, params=pd.params)
        det = gradient_audit(b.deployed, batch.X, batch.y, expected_rate=expected_rate, threshold=threshold, **kw)
        dets.append(det)
        masks.append(batch.is_poison)
        reports.append(metrics.detection_report(det, batch))
        net = train_victim(b, j, pd, rows=rows[~det.flagged])
        hits.append(metrics.attack_success_rate(net, pd, test))
        accs.append(metrics.clean_accuracy(net, test))
    mean_report = {k: float(np.nanmean([r[k] for r in reports])) for k in reports[0]}
    return {"detection": mean_report, "success": float(np.mean(hits)),
            "clean_accuracy": float(np.mean(accs)), "detections": dets, "is_poison": masks}


def dp_sgd_curve(b: Brew, noise_multipliers: Sequence[float], *, max_norm: float = 1.0,
                 progress: bool = False) -> dict:
    """Success and clean accuracy of DP-SGD victims for each noise multiplier.

    Returns ``{"noise": [...], "success": [...], "clean_accuracy": [...]}`` (one value per
    noise multiplier; ``None`` as a multiplier means no defence at all).
    """

    out = {"noise": [], "success": [], "clean_accuracy": []}
    it = noise_multipliers
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(list(noise_multipliers), desc="DP-SGD sweep", leave=False)
    for sigma in it:
        kw = {} if sigma is None else {"aggregate": dp_sgd(max_norm=max_norm, noise_multiplier=sigma)}
        r = evaluate(b, control=False, **kw)
        out["noise"].append(sigma)
        out["success"].append(r["success"])
        out["clean_accuracy"].append(r["clean_accuracy"])
    return out


def try_target(split, deployed: nn.Module, *, target: int = 0, rate: float = 0.05, eps: float = 0.15,
               steps: int = 60, n_clean: int = 300, seed: int = 0, **craft_kw) -> dict:
    """One quick fine-tuning trial (for widgets): craft for the ``target``-th of 10 drawn
    targets, fine-tune the deployed model on poisons and on the noise control.

    Returns ``{"poisoned", "control", "prob_deployed", "prob_victim", "prob_control"}``: the
    poisoned data, the control, and the adversarial class's probability on the target
    before, after poisoning and after the control.
    """
    train, test = split
    targets, classes = choose_targets(deployed, test, 10, rng=seed)
    t, a = int(targets[target]), int(classes[target])
    pd = match_gradients(train, test=test, target_idx=t, target_class=a, surrogates=deployed,
                         rate=rate, eps=eps, steps=steps, batch_clean=n_clean, rng=seed, **craft_kw)
    ctrl = random_noise(pd, eps=eps, rng=seed)
    rest = np.setdiff1d(np.arange(len(train)), pd.poison_idx)
    rows = np.concatenate([pd.poison_idx, np.random.default_rng(seed).choice(rest, n_clean, replace=False)])
    prob = lambda net: _adversarial_prob(net, test, pd)     # noqa: E731
    return {"poisoned": pd, "control": ctrl, "prob_deployed": prob(deployed),
            "prob_victim": prob(models.fine_tune(deployed, pd, rows, seed=seed)),
            "prob_control": prob(models.fine_tune(deployed, ctrl, rows, seed=seed))}


def federated_table(train: Dataset, *, test: Dataset, rules=("mean", "median", "trimmed_mean", "krum"),
                    attacks=("none", "sign_flip", "scaling", "little_is_enough"), malicious: int = 2,
                    progress: bool = False, **kw) -> dict:
    """:func:`federated_train` for every aggregation rule under every attack.

    ``"none"`` in ``attacks`` means no malicious client. Returns ``{(attack, rule):
    FederatedResult}``; ``kw`` go to :func:`federated_train` (``rounds``, ``iid``, ``seed``).
    """
    grid = [(a, r) for a in attacks for r in rules]
    if progress:
        from tqdm.auto import tqdm
        grid = tqdm(grid, desc="federated table", leave=False)
    return {(a, r): federated_train(train, test=test, aggregate=r, malicious=0 if a == "none" else malicious,
                                    attack="sign_flip" if a == "none" else a, **kw)
            for a, r in grid}


# ---- exercises ------------------------------------------------------------------------

KRUM_UPDATES = [[1.0, 1.2], [0.9, 1.0], [1.1, 0.8], [1.0, 1.0], [6.0, -4.0]]


@exercise("l4_krum_pick",
          hint="Krum with f = 1 and n = 5 scores each update by the sum of squared distances to "
               "its n - f - 2 = 2 nearest other updates, and picks the lowest score. Answer with "
               "the index (0-4) into lk.lessons.l04.KRUM_UPDATES.",
          solution="3: (1.0, 1.0) sits in the middle of the honest cluster; its two nearest "
                   "neighbours are 0.04 and 0.01 away (squared), score 0.05. "
                   "lk.defences.aggregation.krum_select(torch.tensor(KRUM_UPDATES), f=1) agrees.",
          answer=3, wrong=4)
def _l4_krum_pick(answer):
    from ..defences.aggregation import krum_select

    right = int(krum_select(torch.tensor(KRUM_UPDATES), f=1, m=1)[0])
    ok = isinstance(answer, (int, np.integer)) and int(answer) == right
    return ok, ("yes: the update closest to its neighbours wins; the outlier (index 4) scores worst."
                if ok else "compute the squared distances between the five updates by hand.")


@exercise("l4_median_breakdown",
          hint="Coordinate-wise median over n = 10 clients: how many may lie arbitrarily while the "
               "median is still pinned between two honest values?",
          solution="4: with f <= 4 liars the middle values (5th and 6th of 10) are bounded by honest "
                   "values; with 5 the attackers own one of the middle positions and can move the "
                   "median anywhere. The breakdown point is just under one half.",
          answer=4, wrong=5)
def _l4_median_breakdown(answer):
    ok = isinstance(answer, (int, np.integer)) and int(answer) == 4
    return ok, ("yes: fewer than half." if ok else "try 10 values with f of them at +1e6 and sort.")


@exercise("l4_clip_update",
          hint="DP-SGD with max_norm C = 1 and no noise: every per-sample gradient is scaled down to "
               "norm <= 1 (shorter ones unchanged), then the batch is averaged. Four gradients point "
               "the same way with norms 0.5, 2, 3 and 0.2: what is the norm of the update?",
          solution="(0.5 + 1 + 1 + 0.2) / 4 = 0.675: the two big gradients count as 1 each. "
                   "lk.defences.dp_sgd.clip_and_noise agrees.",
          answer=0.675, wrong=1.425)
def _l4_clip_update(answer):
    ok = isinstance(answer, (int, float, np.floating)) and abs(float(answer) - 0.675) < 1e-3
    return ok, ("yes: clipping caps each sample's say at C." if ok
                else "clip each norm at 1 first, then take the mean.")

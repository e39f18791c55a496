"""Lesson 3, clean-label poisoning: the notebook's setting, trials, curves and widget callback.

The methods are :func:`labkit.attacks.bullseye_polytope`, :func:`labkit.attacks.collide_features`
and :func:`labkit.attacks.random_noise` (the control); the victim is
:func:`labkit.models.transfer_victim` on :func:`labkit.models.pretrained_extractor`.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import metrics, models
from ..attacks import bullseye_polytope, collide_features, random_noise
from ..attacks._targeted import choose_bases, choose_targets_one_by_one
from .exercises import exercise
from ..data import digits
from ..types import Dataset, PoisonedDataset, make_poisoned

__all__ = ["METHODS", "lesson_setting", "attack_trial", "feature_distance", "budget_curve", "explore_trial"]

#: Crafting methods :func:`attack_trial` knows.
METHODS = ("bullseye", "collision", "random")


@functools.lru_cache(maxsize=3)
def lesson_setting(seed: int = 0) -> dict:
    """What the notebook and the widget share for one seed (memoised; training is
    deterministic): the digits split, the public extractor, the clean victim, the attacker's
    guard and the 10 targets that ``lk.run("clean_label", seed=seed)`` attacks
    (``targets``: list of ``(target_idx, target_class)``)."""
    train, test = digits(seed=seed)
    ext = models.pretrained_extractor()
    clean = models.transfer_victim(train, ext, seed=seed)
    guard = models.train(train, seed=seed + 1, device="cpu")
    idx, cls = choose_targets_one_by_one(clean, test, 10, rng=seed)
    return {"train": train, "test": test, "extractor": ext, "clean_victim": clean,
            "guard": guard, "targets": [(int(t), int(c)) for t, c in zip(idx, cls)]}


def _random_control(train, test, *, extractor, target_idx, target_class, n_poisons, eps, seed):
    """The same-size random perturbation of the bases a crafting method would use."""
    idx = choose_bases(train, extractor, test.X[target_idx], target_class, n_poisons)
    stub = make_poisoned(train, idx=idx, attack="clean_label", params={"method": "random", "eps": eps},
                         target_idx=np.array([target_idx]), target_class=target_class)
    return random_noise(stub, eps=eps, rng=seed)


def _craft(method, train, test, *, extractor, target_idx, target_class, n_poisons, eps,
           opacity=0.0, steps=None, guard=None, guard_weight=1.0, seed=0) -> PoisonedDataset:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    kw = dict(test=test, target_idx=target_idx, extractor=extractor, target_class=target_class,
              n_poisons=n_poisons, eps=eps)
    if method == "bullseye":
        return bullseye_polytope(train, steps=steps or 150, guard=guard, guard_weight=guard_weight, rng=seed, **kw)
    if method == "collision":
        return collide_features(train, steps=steps or 200, opacity=opacity, rng=seed, **kw)
    return _random_control(train, seed=seed, **kw)


def feature_distance(poisoned: PoisonedDataset, test: Dataset, extractor: nn.Module) -> dict:
    """How close the poisons came to the target in feature space, relative to ``||f(t)||``.

    Returns ``{"each": mean_j ||f(x_j) - f(t)|| / ||f(t)||, "mean": ||mean_j f(x_j) - f(t)||
    / ||f(t)||, "before": the same "each" for the unperturbed bases}``.
    """
    with torch.no_grad():
        f_t = extractor(torch.tensor(test.X[poisoned.target_idx[:1]]))
        f_p = extractor(torch.tensor(poisoned.X[poisoned.poison_idx]))
        f_b = extractor(torch.tensor(poisoned.clean.X[poisoned.poison_idx]))
    n = f_t.norm()
    return {"each": float(((f_p - f_t).norm(dim=1) / n).mean()),
            "mean": float((f_p.mean(0) - f_t[0]).norm() / n),
            "before": float(((f_b - f_t).norm(dim=1) / n).mean())}


def attack_trial(train: Dataset, test: Dataset, *, extractor: nn.Module, target_idx: int,
                 target_class: int, method: str = "bullseye", n_poisons: int = 30,
                 eps: float = 0.25, opacity: float = 0.0, steps: Optional[int] = None,
                 guard: Optional[nn.Module] = None, guard_weight: float = 1.0,
                 head_epochs: int = 40, seed: int = 0) -> dict:
    """Craft poisons for one target, train a fresh transfer victim on them, report.

    Returns a dict: ``poisoned`` (PoisonedDataset), ``victim``, ``success`` (bool: the
    target is now read as ``target_class``), ``clean_accuracy``, ``label_consistency`` and
    ``feature_distance`` (see :func:`feature_distance`).
    """
    p = _craft(method, train, test, extractor=extractor, target_idx=target_idx,
               target_class=target_class, n_poisons=n_poisons, eps=eps, opacity=opacity,
               steps=steps, guard=guard, guard_weight=guard_weight, seed=seed)
    victim = models.transfer_victim(p, extractor, epochs=head_epochs, seed=seed)
    return {"poisoned": p, "victim": victim,
            "success": bool(models.predict(victim, test.X[target_idx:target_idx + 1])[0] == target_class),
            "clean_accuracy": metrics.clean_accuracy(victim, test),
            "label_consistency": metrics.label_consistency(p, metrics.held_out(test, [target_idx])),
            "feature_distance": feature_distance(p, test, extractor)}


def budget_curve(train: Dataset, test: Dataset, *, extractor: nn.Module, target_idx: int,
                 target_class: int, eps_values=(0.05, 0.1, 0.2, 0.3), n_poisons: int = 20,
                 guard: Optional[nn.Module] = None) -> dict:
    """Crafting only (no victim): how close each method gets, and how visible, per budget.

    For every ``eps`` and method on the same target: the feature distance ("each" for
    collision and random, "mean" for bullseye: the quantity each method optimises) and the
    label consistency (:func:`labkit.metrics.label_consistency`). Returns ``{"x":
    eps_values, "distance": {method: list}, "label_consistency": {method: list}}``.
    """
    eps_values = list(eps_values)
    out = {"x": eps_values, "distance": {}, "label_consistency": {}}
    for method in METHODS:
        dist, lc = [], []
        for eps in eps_values:
            p = _craft(method, train, test, extractor=extractor, target_idx=target_idx,
                       target_class=target_class, n_poisons=n_poisons, eps=eps, guard=guard)
            d = feature_distance(p, test, extractor)
            dist.append(d["mean"] if method == "bullseye" else d["each"])
            lc.append(metrics.label_consistency(p, metrics.held_out(test, [target_idx])))
        out["distance"][method] = dist
        out["label_consistency"][method] = lc
    return out


def explore_trial(*, method: str = "bullseye", n_poisons: int = 30, eps: float = 0.25,
                  opacity: float = 0.0, target: int = 0, seed: int = 0) -> dict:
    """One trial on target number ``target`` (0-9) of :func:`lesson_setting` (the widget)."""
    s = lesson_setting(seed)
    t, cls = s["targets"][int(target)]
    return attack_trial(s["train"], s["test"], extractor=s["extractor"], target_idx=t,
                        target_class=cls, method=method, n_poisons=n_poisons, eps=eps,
                        opacity=opacity, guard=s["guard"], seed=seed + int(target))


# ---- exercises ------------------------------------------------------------------------

@exercise("l3_knn_k",
          hint="A poison's k nearest neighbours (itself excluded) include the other poisons, "
               "all labelled like it. Deep k-NN flags it only when another label wins the vote "
               "outright. Suppose every other neighbour is of the target's class.",
          solution="19 of the k neighbours are fellow poisons (label = base class); the other "
                   "k - 19 are target-class rows. The target class wins outright when "
                   "k - 19 > 19, i.e. k >= 39. Peri et al.'s rule of thumb: k at least about "
                   "twice the number of poisons. In this lesson the poisons also sit closer to "
                   "their own class than to the target, which is why k = 50 is not always enough.",
          answer=39, wrong=38)
def _l3_knn_k(answer):
    try:
        k = int(answer)
    except (TypeError, ValueError):
        return False, "answer with a whole number k"
    if k == 39:
        return True, "k = 39: 20 target-class votes beat 19 fellow poisons."
    if k == 38:
        return False, "with k = 38 it is 19 against 19: a tie is not an outright win."
    return False, f"k = {k} is not the smallest k where the fellow poisons are outvoted."


@exercise("l3_threat_model",
          hint="Which part of the victim does the attacker optimise against, and does the victim "
               "change that part when it trains on the poisons?",
          solution="'transfer': the poisons are crafted in the feature space of the public, frozen "
                   "extractor. A victim that only retrains its linear head keeps that feature "
                   "space, so the poisons' position there is what the head sees. Retraining end "
                   "to end (with augmentation) changes the features, and the carefully placed "
                   "poisons land somewhere else: the attack mostly stops working (lk.run with "
                   "defence='augmentation').",
          answer="transfer", wrong="end to end")
def _l3_threat_model(answer):
    text = str(answer).strip().lower()
    if text in ("transfer", "transfer learning", "frozen", "frozen features", "head only"):
        return True, "the attack relies on the victim keeping the attacker's feature space."
    if "end" in text or "scratch" in text:
        return False, "end-to-end training moves the features the poisons were placed in."
    return False, "answer 'transfer' or 'end to end'."

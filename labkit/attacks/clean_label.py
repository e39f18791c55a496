"""Clean-label poisoning that works at workshop scale: a bullseye of poisons around a target.

In the spirit of Bullseye Polytope (Aghakhani et al. 2020): many correctly labelled poisons
whose *mean* feature vector sits on the target, plus a "label guard" that keeps every poison
looking like its own class to a pixel-space classifier the attacker trained on clean data.

Threat model (transfer learning, the setting where feature-space attacks are known to work):
the victim downloads a public feature extractor (:func:`labkit.models.pretrained_extractor`,
trained on *other* data), freezes it, and trains only a new linear head on its own training
set (:func:`labkit.models.transfer_victim`). The attacker knows the extractor and the data
distribution, may change the pixels of ``n_poisons`` training images of one class within an
L-inf budget ``eps`` (labels stay correct), and wants one chosen test image read as that
class. They do not know the head's initialisation or the mini-batch order.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..types import Dataset, PoisonedDataset
from ._targeted import check_budget, choose_bases, poisoned_copy, project, target_setup

__all__ = ["bullseye_polytope"]


def bullseye_polytope(data: Dataset, *, test: Dataset = None, target_idx: int = None,
                      extractor: nn.Module = None, target_class: int = None,
                      n_poisons: int = 30, eps: float = 0.25, steps: int = 150,
                      guard: Optional[nn.Module] = None, guard_weight: float = 1.0,
                      base_idx=None, rng=None) -> PoisonedDataset:
    """Many poisons whose mean feature vector sits on the target (the working technique).

    Minimises, by signed-gradient steps inside the L-inf ball (projected gradient descent),

        ||mean_j f(x_j) - f(t)||^2 / ||f(t)||^2  +  guard_weight * mean_j CE(g(x_j), target_class)

    where ``f`` is the public extractor and ``g`` the attacker's own *pixel-space* classifier
    trained on clean data (the "label guard": it keeps every poison looking like its label).
    The poisons need not each reach the target, as Poison Frogs' do: together they surround
    it, so a linear head that fits them with their (correct) label also takes the target.
    Step size ``eps/5`` for the first half of the steps, ``eps/25`` after.


    Threat model: transfer learning. The attacker knows the public extractor, has clean data
    of the same kind (to train ``guard`` and pick bases) and changes only pixels, within
    ``eps``, of ``n_poisons`` rows of ``target_class``; the victim retrains a linear head on
    the frozen extractor (:func:`labkit.models.transfer_victim`). Head initialisation and batch order are
    unknown to the attacker.

    Parameters
    ----------
    data, test, target_idx, extractor, target_class, eps, steps, base_idx, rng
        As in :func:`collide_features`.
    n_poisons : int
        Default 30 (2.2% of the digits training set, about 22% of one class).
    guard : nn.Module, optional
        Pixel classifier; default the lab's MLP trained on ``data`` (seeded from ``rng``).
    guard_weight : float >= 0
        0 turns the guard off.

    Returns
    -------
    PoisonedDataset
        As :func:`collide_features`.

    References
    ----------
    Aghakhani, Meng, Wang, Kruegel & Vigna 2020, "Bullseye Polytope: a scalable clean-label
    poisoning attack with improved transferability", arXiv:2005.00191; Zhu et al. 2019,
    "Transferable clean-label poisoning attacks on deep neural nets", arXiv:1905.05897.

    See Also
    --------
    collide_features, notebooks/03_clean_label.ipynb
    """
    target_idx, target_class = target_setup(test, target_idx, target_class)
    check_budget(eps, 0.0, steps)
    if guard_weight < 0:
        raise ValueError(f"guard_weight must be >= 0, got {guard_weight}")
    if guard is None and guard_weight > 0:
        guard = models.train(data, seed=models.seed_for(rng), device="cpu")
    if base_idx is None:
        base_idx = choose_bases(data, extractor, test.X[target_idx], target_class, n_poisons,
                                guard=guard)
    base_idx = np.sort(np.asarray(base_idx, np.int64))
    b = torch.tensor(data.X[base_idx])
    with torch.no_grad():
        f_t = extractor(torch.tensor(test.X[target_idx][None]))[0]
    lo, hi = (b - eps).clamp(0, 1), (b + eps).clamp(0, 1)
    y_b = torch.full((len(b),), target_class)
    x = b.clone()
    for i in range(steps):
        alpha = eps / 5 if i < steps // 2 else eps / 25
        x_ = x.clone().requires_grad_(True)
        loss = ((extractor(x_).mean(0) - f_t) ** 2).sum() / (f_t ** 2).sum()
        if guard_weight > 0:
            loss = loss + guard_weight * F.cross_entropy(guard(x_), y_b)
        g, = torch.autograd.grad(loss, x_)
        with torch.no_grad():
            x = project(x - alpha * g.sign(), lo, hi)
    params = {"method": "bullseye", "n_poisons": int(len(base_idx)), "eps": float(eps),
              "steps": int(steps), "guard_weight": float(guard_weight)}
    return poisoned_copy(data, x.numpy(), base_idx, target_idx, target_class,
                     "clean_label", params)


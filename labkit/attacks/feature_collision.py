"""Feature collision (Poison Frogs): correctly labelled poisons whose features equal a target's.

Threat model (transfer learning): the victim retrains a linear head on a public, frozen
feature extractor; the attacker knows the extractor, changes the pixels of a few training
images of one class within an L-inf budget (labels stay correct) and wants one chosen test
image read as that class.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..types import Dataset, PoisonedDataset
from ._targeted import check_budget, choose_bases, poisoned_copy, project, target_setup

__all__ = ["collide_features"]


def collide_features(data: Dataset, *, test: Dataset = None, target_idx: int = None,
                     extractor: nn.Module = None, target_class: int = None, n_poisons: int = 1,
                     eps: float = 0.1, opacity: float = 0.0, steps: int = 200,
                     lr: float = 0.01, beta0: float = 0.25, base_idx=None,
                     rng=None) -> PoisonedDataset:
    """Feature collision (Poison Frogs): poisons whose features equal the target's.

    For every base image ``b`` (a ``target_class`` training image), forward-backward splitting
    solves ``min_x ||f(x) - f(t)||^2 + beta ||x - b||^2``:

    - forward (gradient) step on the collision term: ``x <- x - lr * grad``;
    - backward (proximal) step on the closeness term: ``x <- (x + lr*beta*b) / (1 + lr*beta)``;
    - projection onto ``|x - b| <= eps`` and ``[0, 1]`` (the lab's budget; the paper has none).

    ``beta = beta0 * (d_features / d_pixels)^2`` as in the paper. The step size is halved
    whenever a step raises the objective (the step is then undone), as in the authors' code.
    With ``opacity > 0`` every base is first watermarked: ``(1 - opacity) * b + opacity * t``
    (clipped to the budget).

    Parameters
    ----------
    data : Dataset
        The clean training set; poisons replace ``n_poisons`` of its ``target_class`` rows.
    test : Dataset
        Holds the target image ``test.X[target_idx]``.
    target_idx : int
        Index into ``test`` of the image the attacker wants misread.
    extractor : nn.Module
        The feature map ``f`` (e.g. :func:`labkit.models.pretrained_extractor`).
    target_class : int
        The label the target should get (labels of the poisons, unchanged).
    n_poisons : int
    eps : float in (0, 1]
        L-inf budget per pixel.
    opacity : float in [0, 1)
        Watermark strength.
    steps, lr, beta0 : optimisation settings.
    base_idx : array of int, optional
        Rows to perturb; default :func:`labkit.attacks._targeted.choose_bases`.
    rng : unused (deterministic); accepted for the attack contract.

    Returns
    -------
    PoisonedDataset
        Labels unchanged; ``poison_idx`` = the bases; ``target_idx`` = ``[target_idx]``;
        ``target_class`` = ``target_class``.

    Notes
    -----
    Faithful to Shafahi et al., Algorithm 1, but run on all poisons in one batch. In the
    paper a single poison suffices in transfer learning with a 2048-d InceptionV3 feature
    space; on 8x8 digits the L-inf ball is too small to move the features far (the
    notebook's success-versus-visibility curve shows the trade-off).

    References
    ----------
    Shafahi, Huang, Najibi, Suciu, Studer, Dumitras & Goldstein 2018, "Poison Frogs!
    Targeted clean-label poisoning attacks on neural networks", arXiv:1804.00792.

    See Also
    --------
    bullseye_polytope, notebooks/03_clean_label.ipynb
    """
    target_idx, target_class = target_setup(test, target_idx, target_class)
    check_budget(eps, opacity, steps)
    if base_idx is None:
        base_idx = choose_bases(data, extractor, test.X[target_idx], target_class, n_poisons)
    base_idx = np.sort(np.asarray(base_idx, np.int64))
    b = torch.tensor(data.X[base_idx])
    t = torch.tensor(test.X[target_idx][None])
    with torch.no_grad():
        f_t = extractor(t)
    beta = beta0 * (f_t.shape[1] / b[0].numel()) ** 2
    lo, hi = (b - eps).clamp(0, 1), (b + eps).clamp(0, 1)
    x = project((1 - opacity) * b + opacity * t, lo, hi)

    def objective(x):
        return ((extractor(x) - f_t) ** 2).sum((1,)) + beta * ((x - b) ** 2).flatten(1).sum(1)

    step = torch.full((len(b), 1, 1, 1), float(lr))
    with torch.no_grad():
        obj = objective(x)
    for _ in range(steps):
        x_ = x.clone().requires_grad_(True)
        coll = ((extractor(x_) - f_t) ** 2).sum()
        g, = torch.autograd.grad(coll, x_)
        with torch.no_grad():
            new = x - step * g                                   # forward step
            new = (new + step * beta * b) / (1 + step * beta)    # backward (proximal) step
            new = project(new, lo, hi)
            new_obj = objective(new)
            worse = (new_obj > obj).view(-1, 1, 1, 1)
            x = torch.where(worse, x, new)
            obj = torch.where(worse.view(-1), obj, new_obj)
            step = torch.where(worse, step / 2, step)
    params = {"method": "collision", "n_poisons": int(len(base_idx)), "eps": float(eps),
              "opacity": float(opacity), "steps": int(steps)}
    return poisoned_copy(data, x.numpy(), base_idx, target_idx, target_class,
                     "feature_collision", params)


"""A backdoor with correct labels: images of the target class made hard, then stamped.

Label-consistent backdoor (Turner, Tsipras & Madry 2019). A dirty-label backdoor
(:mod:`labkit.attacks.backdoor`) relabels its rows, which anyone who looks at them can see.
Here every poison is a real image of the target class, correctly labelled. Stamping a
trigger on ordinary images of that class teaches the model little: it already reads them
by their shape. So the attacker first makes each image *hard*: an adversarial perturbation
within an L-inf budget ``eps`` pushes it away from its class on models the attacker trained
themselves. The victim cannot fit such an image by its shape, so it leans on the one thing
those images share, the trigger, and later reads any input carrying the trigger as the
target class.

Threat model: the attacker contributes (or edits the pixels of) a few training images of
the target class, never their labels; they know the data distribution and train their own
surrogate models on it, not the victim's model, initialisation or training order.

Its control (:func:`stamp_only`) is the same images with the same trigger, not hardened:
the difference between the two is what the hardening buys.

See Also: notebooks/03_clean_label.ipynb
"""
from __future__ import annotations

import numpy as np
import torch

from .. import models
from ..rng import as_rng
from ..types import Dataset, PoisonedDataset, make_poisoned
from ._targeted import logit_margin
from .backdoor import _make_trigger

__all__ = ["label_consistent_backdoor", "stamp_only", "harden"]


def harden(surrogates: list, X: np.ndarray, label: int, *, eps: float, steps: int = 40) -> np.ndarray:
    """``X`` (n, C, H, W) moved within ``+-eps`` (L-inf, pixels kept in [0, 1]) to raise the
    best other class above ``label`` on every surrogate: projected sign-gradient ascent on
    the summed margin ``max_{k != label} logit_k - logit_label``, step ``eps / 4``."""
    x0 = torch.as_tensor(np.asarray(X, np.float32))
    y = torch.full((len(x0),), int(label), dtype=torch.long)
    lo, hi = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
    x = x0.clone()
    for _ in range(int(steps)):
        x.requires_grad_(True)
        loss = sum(-logit_margin(net(x), y).sum() for net in surrogates)
        grad, = torch.autograd.grad(loss, x)
        x = torch.minimum(torch.maximum(x.detach() + eps / 4 * grad.sign(), lo), hi)
    return x.numpy().astype(np.float32)


def label_consistent_backdoor(data: Dataset, *, target_class: int = 0, rate: float = 0.05, eps: float = 0.1,
                              n_surrogates: int = 3, steps: int = 40, trigger="patch", rng=None,
                              progress: bool = False, **trigger_settings) -> PoisonedDataset:
    """Harden a few correctly labelled images of ``target_class`` and stamp a trigger on them.

    Parameters
    ----------
    data : Dataset
    target_class : int
        The class every triggered input should be read as; the poisons are images of it.
    rate : float in (0, 1]
        Fraction of the *target class's* training rows poisoned (at least one).
    eps : float in [0, 1]
        L-inf budget of the hardening perturbation (0: stamp only, the control).
    n_surrogates : int
        Models the attacker trains on ``data`` (own seeds) and hardens against together, so
        the perturbation does not depend on one model's quirks.
    steps : int
        Projected sign-gradient steps of the hardening.
    trigger : {"patch", "blend"} or a trigger object
        As in :func:`labkit.attacks.add_backdoor`; by default a 2x2 patch in every corner
        (``position="corners"``, Turner et al.'s four-corner pattern).
    rng : None, int or numpy Generator
        Which rows are poisoned and the surrogates' seeds.
    progress : bool
        Show a progress bar while the surrogates train.
    **trigger_settings
        Settings of a trigger given by name (``size``, ``position``, ``value``, ``alpha``).

    Returns
    -------
    PoisonedDataset
        Rows ``poison_idx`` are hardened, stamped images of ``target_class``; every label is
        the original one. ``trigger`` and ``target_class`` are set, so
        :func:`labkit.metrics.attack_success_rate` measures triggered non-target test inputs
        read as ``target_class``.

    References
    ----------
    Turner, Tsipras & Madry 2019, "Label-consistent backdoor attacks", arXiv:1912.02771.

    See Also
    --------
    stamp_only, labkit.attacks.add_backdoor, notebooks/03_clean_label.ipynb
    """
    if not (isinstance(rate, (int, float, np.floating)) and 0 < rate <= 1):
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must be in [0, 1], got {eps}")
    if not (isinstance(target_class, (int, np.integer)) and 0 <= target_class < data.n_classes):
        raise ValueError(f"target_class must be an int in [0, {data.n_classes}), got {target_class!r}")
    if n_surrogates < 1 or steps < 1:
        raise ValueError(f"need n_surrogates >= 1 and steps >= 1, got {n_surrogates}, {steps}")
    if trigger == "patch":
        trigger_settings = {"position": "corners", **trigger_settings}
    trig = _make_trigger(trigger, dict(trigger_settings))
    rng = as_rng(rng)
    own = np.flatnonzero(data.y == target_class)
    if own.size == 0:
        raise ValueError(f"no training rows of class {target_class} to poison")
    n_poison = max(1, int(round(rate * own.size)))
    idx = np.sort(rng.choice(own, n_poison, replace=False))
    seeds = rng.integers(2**31 - 1, size=int(n_surrogates))
    base = data.X[idx]
    if eps > 0:
        draws = seeds
        if progress:
            from tqdm.auto import tqdm
            draws = tqdm(seeds, desc="attacker's surrogates", leave=False)
        surrogates = [models.train(data, seed=int(s), device="cpu") for s in draws]
        base = harden(surrogates, base, target_class, eps=eps, steps=steps)
    X = data.X.copy()
    X[idx] = trig(base)
    params = {"rate": float(rate), "target_class": int(target_class), "eps": float(eps), **trig.params}
    return make_poisoned(data, X=X, y=data.y.copy(), idx=idx, attack="label_consistent", params=params,
                         target_class=int(target_class), trigger=trig)


def stamp_only(poisoned: PoisonedDataset) -> PoisonedDataset:
    """The control of :func:`label_consistent_backdoor`: the same rows with the same
    trigger, taken from the clean data (not hardened); labels kept."""
    clean, idx = poisoned.clean, poisoned.poison_idx
    X = np.array(clean.X, copy=True)
    X[idx] = poisoned.trigger(clean.X[idx])
    return make_poisoned(clean, X=X, y=clean.y.copy(), idx=idx, attack="stamp_only",
                         params={**poisoned.params, "eps": 0.0}, target_class=poisoned.target_class,
                         trigger=poisoned.trigger)

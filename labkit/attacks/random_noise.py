"""The control every targeted attack is measured against: the same rows, random noise.

If random +-eps noise on the poisons' rows flipped targets too, the "attack" would be the
choice of rows or the victim's training, not the optimisation.

See Also: notebooks/03_clean_label.ipynb, notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

import numpy as np

from ..rng import as_rng
from ..types import PoisonedDataset, make_poisoned

__all__ = ["random_noise"]


def random_noise(poisoned: PoisonedDataset, *, eps: float, rng=None) -> PoisonedDataset:
    """The rows of ``poisoned.poison_idx``, taken from the clean data, each pixel moved by
    ``+eps`` or ``-eps`` at random (clipped to [0, 1]); labels and targets kept.

    A row that clipping would leave unchanged (every pixel saturated the wrong way) gets one
    pixel moved, so every returned row differs from its clean version.
    """
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    rng = as_rng(rng)
    clean, idx = poisoned.clean, poisoned.poison_idx
    b = clean.X[idx]
    X_p = np.clip(b + eps * rng.choice([-1.0, 1.0], size=b.shape), 0, 1).astype(np.float32)
    same = (X_p == b).reshape(len(b), -1).all(1)
    X_p[same, 0, 0, 0] = np.where(b[same, 0, 0, 0] > 0.5, b[same, 0, 0, 0] - eps, eps)
    X = np.array(clean.X, copy=True)
    X[idx] = X_p
    return make_poisoned(clean, X=X, idx=idx, attack="random_noise",
                         params={"rate": poisoned.params.get("rate"), "eps": float(eps)},
                         target_idx=poisoned.target_idx, target_class=poisoned.target_class)

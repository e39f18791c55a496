"""DP-SGD as a poisoning defence: clip every per-sample gradient, then add Gaussian noise.

Hong, Chandrasekaran, Kaya, Dumitras & Papernot 2020, "On the effectiveness of mitigating
data poisoning attacks with gradient shaping", arXiv:2002.11497: poisons work through
gradients that are larger than, or point elsewhere than, clean ones; bounding each sample's
influence (clipping) and drowning the rest in noise blunts them, at a price in accuracy.
The recipe is Abadi et al. 2016 (arXiv:1607.00133); here it is used for robustness, not for
a privacy guarantee (no accountant).

It plugs into :func:`labkit.models.train`'s ``aggregate=`` slot, the same slot as the
robust aggregation rules of :mod:`labkit.defences.aggregation`.

See Also: notebooks/04_gradient_manipulation.ipynb
"""
from __future__ import annotations

from typing import Callable

import torch

from .aggregation import aggregator, clip_rows

__all__ = ["dp_sgd", "clip_and_noise"]


def clip_and_noise(U: torch.Tensor, *, max_norm: float = 1.0, noise_multiplier: float = 0.5,
                   gen: torch.Generator = None) -> torch.Tensor:
    """``(sum_i clip(U_i, C) + N(0, (sigma C)^2 I)) / n`` for ``U`` shaped (n, d).

    With ``noise_multiplier = 0`` this is the mean of the clipped rows, whose norm is at
    most ``max_norm``.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    clipped = clip_rows(U, max_norm)
    total = clipped.sum(0)
    if noise_multiplier > 0:
        noise = torch.randn(total.shape, generator=gen, dtype=torch.float32)
        total = total + (noise_multiplier * max_norm) * noise.to(total.device, total.dtype)
    return total / U.shape[0]


def dp_sgd(*, max_norm: float = 1.0, noise_multiplier: float = 0.5) -> Callable:
    """The ``aggregate`` callable for DP-SGD training.

    Parameters
    ----------
    max_norm : float > 0
        Clip ``C``: every per-sample gradient (all parameters together) is scaled down to
        L2 norm at most ``C``.
    noise_multiplier : float >= 0
        ``sigma``: Gaussian noise of standard deviation ``sigma * C`` is added to the sum of
        clipped gradients before dividing by the batch size.

    Returns
    -------
    callable
        ``aggregate(grads, gen) -> {name: param.shape}`` for ``models.train(aggregate=...)``;
        noise is drawn from ``gen`` (the training seed), so runs are reproducible.

    Examples
    --------
    >>> net = lk.models.train(data, aggregate=dp_sgd(max_norm=1.0, noise_multiplier=0.5))  # doctest: +SKIP

    See Also
    --------
    labkit.defences.aggregation.norm_clip : the same clipping without noise.
    notebooks/04_gradient_manipulation.ipynb
    """
    aggregate = aggregator(clip_and_noise, max_norm=max_norm, noise_multiplier=noise_multiplier)
    aggregate.rule = "dp_sgd"
    return aggregate

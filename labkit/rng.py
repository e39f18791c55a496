"""Randomness in one place: every function that draws takes an ``rng`` or ``seed`` argument.

``as_rng(rng)`` turns ``None`` (seed 0), an int seed or a ``numpy.random.Generator`` into a
Generator; ``seed_for(rng)`` draws an int seed for :func:`labkit.models.train`. Library
code never seeds a global generator.
"""
from __future__ import annotations

import numpy as np

__all__ = ["as_rng", "seed_for"]


def as_rng(rng=None) -> np.random.Generator:
    """Turn ``None``, an int seed or a ``Generator`` into a ``numpy.random.Generator``.

    ``None`` means seed 0, so that every call in the lab is reproducible by default.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def seed_for(rng) -> int:
    """Draw an int seed for :func:`labkit.models.train` from ``rng`` (a seed or Generator)."""
    return int(as_rng(rng).integers(2**31 - 1))

"""Robust training as defences: change how the model learns instead of what it learns from.

Each function returns keyword arguments for :func:`labkit.models.train` (the registry's
``training`` defences); the training itself lives in :mod:`labkit.models`.

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

__all__ = ["augmentation", "adversarial_training"]


def augmentation() -> dict:
    """Random one-pixel shifts and pixel noise on every mini-batch (``augment=True``)."""
    return {"augment": True}


def adversarial_training(*, eps: float = 0.1) -> dict:
    """Train on FGSM adversarial versions of every mini-batch within an L-inf ball of ``eps``
    (Goodfellow, Shlens & Szegedy 2015, arXiv:1412.6572)."""
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    return {"adversarial_eps": float(eps)}

"""Attacks: one file per family, one public verb each. Every verb returns a PoisonedDataset.

See Also: labkit.registry.ATTACKS
"""
from .label_flip import flip_labels

__all__ = ["flip_labels"]

"""Defences: one file per method. Detectors return a Detection and see only what a defender has.

See Also: labkit.registry.DEFENCES
"""
from .base import flag_top
from .confident_learning import confident_learning
from .dpa import certified_accuracy, dpa
from .knn_sanitisation import knn_sanitisation

__all__ = ["flag_top", "confident_learning", "dpa", "certified_accuracy", "knn_sanitisation"]

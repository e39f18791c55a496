"""Attacks: one file per family, one public verb each. Every verb returns a PoisonedDataset.

See Also: labkit.registry.ATTACKS
"""
from .backdoor import add_backdoor, blend_trigger, patch_trigger
from .label_flip import flip_labels
from . import clean_label
from .clean_label import bullseye_polytope, collide_features
from . import federated
from .gradient import match_gradients

__all__ = ["flip_labels", "match_gradients", "federated", "add_backdoor", "patch_trigger", "blend_trigger", "clean_label", "collide_features", "bullseye_polytope"]

"""Attacks: crafting only, one file per technique, one public verb each; every verb returns a
:class:`~labkit.types.PoisonedDataset` that carries its own ground truth.

See Also: labkit.registry.ATTACKS (how each is run), labkit.scenarios (how its victim learns)
"""
from .backdoor import add_backdoor, blend_trigger, patch_trigger
from .clean_label import bullseye_polytope
from .feature_collision import collide_features
from .gradient_matching import match_gradients
from .label_consistent import label_consistent_backdoor, stamp_only
from .label_flip import flip_labels
from .random_noise import random_noise
from .rag_poison import inject_passages, random_passages
from .text_backdoor import insert_trigger, insert_trigger_clean_label, poison_instructions, trigger_control

__all__ = ["flip_labels", "add_backdoor", "patch_trigger", "blend_trigger", "bullseye_polytope",
           "collide_features", "match_gradients", "random_noise", "label_consistent_backdoor", "stamp_only",
           "insert_trigger", "insert_trigger_clean_label", "poison_instructions", "trigger_control",
           "inject_passages", "random_passages"]

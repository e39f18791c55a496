"""One module per notebook: the lesson's setting, its glue (trial loops, curves, widget
callbacks) and its self-checking exercises. Methods live in ``attacks/`` and ``defences/``;
these modules only put them together the way each notebook teaches them.

Which lessons exist, in which order, with which notebook, title, objectives, minutes and
exercises is written once, in :mod:`labkit.lessons.manifest` (``LESSONS``); lesson ``N``'s
module is ``lk.lessons.lNN`` (``lk.lessons.l03``), its notebook ``notebooks/NN_slug.ipynb``.
``l05`` is also ``lk.challenge`` (the capstone); ``l06``'s methods are ``lk.supplychain``.

:func:`load_all` imports every lesson, so that each registers its exercises in
:mod:`labkit.lessons.exercises` (``lk.checks`` calls it).
"""
from __future__ import annotations

import importlib

from .manifest import LESSONS, Lesson

#: The lesson modules, in the manifest's order (``"l00"``, ``"l01"``, ...).
MODULES = tuple(lesson.module for lesson in LESSONS)

__all__ = [*MODULES, "LESSONS", "Lesson", "MODULES", "load_all"]


def __getattr__(name: str):
    if name in MODULES or name in ("exercises", "manifest"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'labkit.lessons' has no attribute {name!r}")


def load_all() -> None:
    """Import every lesson module (each registers its exercises)."""
    for name in MODULES:
        importlib.import_module(f".{name}", __name__)

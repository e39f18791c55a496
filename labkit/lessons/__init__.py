"""One module per notebook: the lesson's setting, its glue (trial loops, curves, widget
callbacks) and its self-checking exercises. Methods live in ``attacks/`` and ``defences/``;
these modules only put them together the way each notebook teaches them.

=========  ====================================
module     notebook
=========  ====================================
``l00``    notebooks/00_welcome.ipynb
``l01``    notebooks/01_label_flipping.ipynb
``l02``    notebooks/02_backdoors.ipynb
``l03``    notebooks/03_clean_label.ipynb
``l04``    notebooks/04_gradient_manipulation.ipynb
``l05``    notebooks/05_defence_in_depth.ipynb (the capstone: ``lk.challenge``)
``l06``    notebooks/06_supply_chain.ipynb (exercises; the methods are ``lk.supplychain``)
=========  ====================================

:func:`load_all` imports every lesson, so that each registers its exercises in
:mod:`labkit.lessons.exercises` (``lk.checks`` calls it).
"""
from __future__ import annotations

import importlib

LESSONS = ("l00", "l01", "l02", "l03", "l04", "l05", "l06")

__all__ = [*LESSONS, "load_all"]


def __getattr__(name: str):
    if name in LESSONS or name == "exercises":
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'labkit.lessons' has no attribute {name!r}")


def load_all() -> None:
    """Import every lesson module (each registers its exercises)."""
    for name in LESSONS:
        importlib.import_module(f".{name}", __name__)

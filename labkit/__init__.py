"""labkit: the helper package of the Poisoning Lab.

``import labkit as lk`` gives ``lk.data``, ``lk.attacks``, ``lk.defences``, ``lk.models``,
``lk.metrics``, ``lk.registry``, ``lk.scenarios``, ``lk.federated``, ``lk.viz``,
``lk.widgets``, ``lk.checks``, ``lk.lessons`` (one module per notebook), ``lk.challenge``
(the capstone), ``lk.supplychain`` (lesson 6), ``lk.run`` / ``lk.sweep`` and the types
``lk.Dataset``, ``lk.PoisonedDataset``, ``lk.Detection``, ``lk.RunResult``.

Layers import downwards only: core (``types``, ``rng``, ``compute``, ``data``, ``models``,
``metrics``) <- methods (``attacks``, ``defences``, ``federated``) <- orchestration
(``registry``, ``scenarios``, ``experiment``) <- presentation (``viz``, ``widgets``,
``checks``, ``lessons``, ``cli``, ``bench``, ``progress``). ``supplychain`` stands apart.

Importing labkit is cheap: each of these is imported the first time it is used, so the
static scanner (``python -m labkit scan``) never imports PyTorch.
"""
from __future__ import annotations

import importlib

from .compute import set_pool_variables

set_pool_variables()  # before numpy or torch start their thread pools (see labkit.compute)

__version__ = "0.1.0"

_MODULES = ("attacks", "checks", "cli", "compute", "data", "defences", "experiment", "federated", "lessons",
            "metrics", "models", "registry", "rng", "scenarios", "supplychain", "types", "viz", "widgets")
#: ``lk.challenge`` is lesson 5's capstone.
_ALIASES = {"challenge": "lessons.l05"}
_NAMES = {"run": "experiment", "sweep": "experiment", "Dataset": "types", "Detection": "types",
          "PoisonedDataset": "types", "RunResult": "types"}

__all__ = [*_MODULES, *_ALIASES, *_NAMES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _ALIASES:
        return importlib.import_module(f".{_ALIASES[name]}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

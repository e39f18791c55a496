"""labkit: the helper package of the Poisoning Lab.

``import labkit as lk`` gives ``lk.data``, ``lk.attacks``, ``lk.defences``, ``lk.models``,
``lk.metrics``, ``lk.registry``, ``lk.scenarios``, ``lk.federated``, ``lk.text``, ``lk.viz``,
``lk.widgets``, ``lk.checks``, ``lk.lessons`` (one module per notebook), ``lk.challenge``
(the capstone), ``lk.supplychain`` (lesson 6), ``lk.run`` / ``lk.sweep`` and the types
``lk.Dataset``, ``lk.PoisonedDataset``, ``lk.Detection``, ``lk.RunResult``.

Where things live (layers import downwards only; ``tests/test_architecture.py`` enforces it)::

    core           types rng compute optim data text models       data, text, seeds, threads,
                   metrics                                       training, scores
    methods        attacks/ defences/ federated                  one file per attack / defence
    orchestration  registry scenarios experiment                 the tables and the one run()/sweep()
                   claims contracts                              stated numbers; contract checkers
    presentation   viz widgets checks lessons/ cli/              plots, panels, exercises, notebooks'
                   bench progress completion                     glue, CLI, timings, completion codes
    apart          supplychain/                                  the model-file scanner (imports no lab)

To add

- an attack: ``attacks/<name>.py`` (a verb returning a ``PoisonedDataset``), its export in
  ``attacks/__init__.py``, one line in ``registry.ATTACKS``; ``tests/test_registry.py``
  then runs it through the contract and end to end;
- a defence: ``defences/<name>.py``, its export in ``defences/__init__.py``, one line in
  ``registry.DEFENCES`` and its name in the ``defences`` of the attacks it applies to (the
  same registry-wide tests then cover it);
- a lesson: one entry in ``lessons/manifest.py``, ``lessons/lNN.py`` (exercises registered
  with ``answer=`` and ``wrong=``), ``notebooks/NN_<slug>.ipynb``, and its test file in
  ``tests/conftest.py``'s ``LESSON_TESTS``;
- a scanner rule: a row in ``supplychain/rules.py`` and a malicious and a benign example in
  ``supplychain/payloads.py`` (the corpus tests then hold the scanner to it).

Importing labkit is cheap: each of these is imported the first time it is used, so the
static scanner (``python -m labkit scan``) never imports PyTorch.
"""
from __future__ import annotations

import importlib

from .compute import set_pool_variables

set_pool_variables()  # before numpy or torch start their thread pools (see labkit.compute)

__version__ = "0.1.0"

_MODULES = ("attacks", "checks", "cli", "compute", "data", "defences", "experiment", "federated", "lessons",
            "metrics", "models", "registry", "rng", "scenarios", "supplychain", "text", "types", "viz", "widgets")
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

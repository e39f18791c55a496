"""labkit: the helper package of the Poisoning Lab.

``import labkit as lk`` gives ``lk.data``, ``lk.attacks``, ``lk.defences``, ``lk.models``,
``lk.metrics``, ``lk.viz``, ``lk.widgets``, ``lk.checks``, ``lk.challenge`` (the capstone),
``lk.supplychain`` (lesson 6), ``lk.run`` / ``lk.sweep`` and the types ``lk.Dataset``, ``lk.PoisonedDataset``, ``lk.Detection``, ``lk.RunResult``.
"""
from . import attacks, challenge, checks, data, defences, metrics, models, registry, supplychain, viz, widgets
from .experiment import run, sweep
from .types import Dataset, Detection, PoisonedDataset, RunResult

__version__ = "0.1.0"
__all__ = ["attacks", "challenge", "checks", "data", "defences", "metrics", "models", "registry", "supplychain",
           "viz", "widgets", "run", "sweep", "Dataset", "Detection", "PoisonedDataset", "RunResult"]

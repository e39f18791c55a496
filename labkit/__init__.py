"""labkit: the helper package of the Poisoning Lab.

``import labkit as lk`` gives ``lk.data``, ``lk.attacks``, ``lk.defences``, ``lk.models``,
``lk.metrics``, ``lk.viz``, ``lk.widgets``, ``lk.checks``, ``lk.run`` / ``lk.sweep`` and the
types ``lk.Dataset``, ``lk.PoisonedDataset``, ``lk.Detection``, ``lk.RunResult``.
"""
from . import attacks, checks, data, defences, metrics, models, registry, viz, widgets
from .experiment import run, sweep
from .types import Dataset, Detection, PoisonedDataset, RunResult

__version__ = "0.1.0"
__all__ = ["attacks", "checks", "data", "defences", "metrics", "models", "registry", "viz",
           "widgets", "run", "sweep", "Dataset", "Detection", "PoisonedDataset", "RunResult"]

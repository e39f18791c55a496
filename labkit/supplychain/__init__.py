"""The supply-chain scanner product of lesson 6: poisoned metadata in model files.

``from labkit import supplychain as sc`` (or ``lk.supplychain``) gives:

* :mod:`~labkit.supplychain.payloads`: harmless poisoned and benign artifacts, built at
  run time in a temp dir (``build``, ``build_corpus``, ``MALICIOUS``, ``BENIGN``);
* :mod:`~labkit.supplychain.loaders`: the vulnerable loaders, run in a sandboxed
  subprocess (``load_artifacts``), and the safe counterparts (``load_weights``,
  ``safe_instantiate``);
* :mod:`~labkit.supplychain.scanner`: a static scanner that fails closed, for pickles,
  archives and configs (``scan_file``, ``scan_paths``), also ``python -m labkit scan``
  (text, JSON or SARIF output, ``--self-test``, a pre-commit hook); its readers
  (:mod:`~labkit.supplychain.pickle_machine`, :mod:`~labkit.supplychain.containers`,
  :mod:`~labkit.supplychain.configs`) report what a loader would do, and
  :mod:`~labkit.supplychain.rules` decides what is a finding;
* :mod:`~labkit.supplychain.pinning`: a SHA-256 lock file verified before load;
* :mod:`~labkit.supplychain.bench` and :mod:`~labkit.supplychain.compare`: timings, and
  detection next to other scanners.

It imports nothing of the lab: the lesson's tables, demos and exercises are
:mod:`labkit.lessons.l06`. Every name is imported on first use, so ``scan`` never pulls
in PyTorch.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import importlib

_MODULES = ("bench", "blob", "cli", "compare", "configs", "containers", "findings", "loaders",
            "output", "payloads", "pickle_machine", "pinning", "rules", "scanner", "selftest",
            "zoo")
_NAMES = {
    "bench_scan": "bench",
    "BlockedTarget": "loaders", "LoadOutcome": "loaders", "load_artifacts": "loaders",
    "load_in_subprocess": "loaders", "load_weights": "loaders", "read_config": "loaders",
    "safe_instantiate": "loaders",
    "BENIGN": "payloads", "MALICIOUS": "payloads", "ZOO_TARGETS": "payloads",
    "Artifact": "payloads", "build": "payloads", "build_corpus": "payloads",
    "select": "payloads",
    "verify": "pinning", "write_lock": "pinning",
    "Table": "output", "table": "output",
    "DEFAULT_ALLOW": "scanner", "Finding": "scanner", "ScanReport": "scanner",
    "ScanBudget": "scanner", "scan_bytes": "scanner", "scan_file": "scanner",
    "scan_paths": "scanner",
}

__all__ = ["cli", "loaders", "payloads", "pinning", "rules", "scanner", "zoo", *_NAMES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'labkit.supplychain' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MODULES))

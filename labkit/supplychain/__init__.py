"""Lesson 6: poisoned metadata in the ML supply chain.

``from labkit import supplychain as sc`` (or ``lk.supplychain``) gives:

* :mod:`~labkit.supplychain.payloads`: harmless poisoned and benign artifacts, built at
  run time in a temp dir (``build``, ``build_corpus``, ``MALICIOUS``, ``BENIGN``);
* :mod:`~labkit.supplychain.loaders`: the vulnerable loaders, run in a sandboxed
  subprocess (``load_artifacts``), and the safe counterparts (``load_weights``,
  ``safe_instantiate``);
* :mod:`~labkit.supplychain.scanner`: a static scanner that fails closed, for pickles,
  archives and configs (``scan_file``, ``scan_paths``), also ``python -m labkit scan``
  (text, JSON or SARIF output, ``--self-test``, a pre-commit hook);
* :mod:`~labkit.supplychain.pinning`: a SHA-256 lock file verified before load;
* :mod:`~labkit.supplychain.exercises`: the notebook's self-checking exercises.

Every name is imported on first use, so ``scan`` never pulls in PyTorch.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import importlib

_MODULES = ("bench", "blob", "cli", "compare", "configs", "containers",
            "exercises", "findings", "loaders", "output", "payloads", "pickle_machine",
            "pinning", "report", "rules", "scanner", "selftest", "zoo")
_NAMES = {
    "bench_scan": "bench",
    "BlockedTarget": "loaders", "LoadOutcome": "loaders", "load_artifacts": "loaders",
    "load_in_subprocess": "loaders", "load_weights": "loaders", "read_config": "loaders",
    "safe_instantiate": "loaders", "try_instantiate": "loaders",
    "BENIGN": "payloads", "MALICIOUS": "payloads", "ZOO_TARGETS": "payloads",
    "Artifact": "payloads", "build": "payloads", "build_corpus": "payloads",
    "select": "payloads",
    "verify": "pinning", "write_lock": "pinning",
    "compare_loaders": "report", "describe": "report", "fire_table": "report",
    "ladder": "report", "scan_summary": "report", "scan_table": "report", "table": "report",
    "DEFAULT_ALLOW": "scanner", "Finding": "scanner", "ScanReport": "scanner",
    "ScanBudget": "scanner", "scan_bytes": "scanner", "scan_file": "scanner",
    "scan_paths": "scanner",
}

__all__ = ["cli", "exercises", "loaders", "payloads", "pinning", "report", "scanner", "zoo",
           *_NAMES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'labkit.supplychain' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MODULES))

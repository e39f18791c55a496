"""Lesson 6: poisoned metadata in the ML supply chain.

``from labkit import supplychain as sc`` (or ``lk.supplychain``) gives:

* :mod:`~labkit.supplychain.payloads`: harmless poisoned and benign artifacts, built at
  run time in a temp dir (``build``, ``build_corpus``, ``MALICIOUS``, ``BENIGN``);
* :mod:`~labkit.supplychain.loaders`: the vulnerable loaders, run in a sandboxed
  subprocess (``load_artifacts``), and the safe counterparts (``load_weights``,
  ``safe_instantiate``);
* :mod:`~labkit.supplychain.scanner`: a static scanner for pickles and ``_target_``
  metadata (``scan_file``, ``scan_paths``), also ``python -m labkit scan``;
* :mod:`~labkit.supplychain.pinning`: a SHA-256 lock file verified before load;
* :mod:`~labkit.supplychain.exercises`: the notebook's self-checking exercises.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from . import cli, exercises, loaders, payloads, pinning, report, scanner, zoo
from .bench import bench_scan
from .loaders import (BlockedTarget, LoadOutcome, load_artifacts, load_in_subprocess,
                      load_weights, read_config, safe_instantiate, try_instantiate)
from .payloads import (BENIGN, MALICIOUS, ZOO_TARGETS, Artifact, build, build_corpus,
                       select)
from .pinning import verify, write_lock
from .report import (compare_loaders, describe, fire_table, ladder, scan_summary,
                     scan_table, table)
from .scanner import DEFAULT_ALLOW, Finding, ScanReport, scan_bytes, scan_file, scan_paths

__all__ = [
    "cli", "exercises", "loaders", "payloads", "pinning", "report", "scanner", "zoo",
    "bench_scan", "try_instantiate", "compare_loaders", "fire_table", "scan_summary",
    "select", "describe",
    "BlockedTarget", "LoadOutcome", "load_artifacts", "load_in_subprocess", "load_weights",
    "read_config", "safe_instantiate", "BENIGN", "MALICIOUS", "ZOO_TARGETS", "Artifact",
    "build", "build_corpus", "verify", "write_lock", "ladder", "scan_table", "table",
    "DEFAULT_ALLOW", "Finding", "ScanReport", "scan_bytes", "scan_file", "scan_paths",
]

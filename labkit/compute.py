"""How many CPU threads the lab's computations use: one place for the kernels, the CLI and
the tests.

The lab's models are tiny (a 64-unit MLP on 8x8 digits): one thread trains them fastest,
and extra threads only fight each other, badly so in a container that sees all of a big
host's cores but may use about one of them (Binder, most JupyterHubs). One thread also
gives the same numbers in JupyterLab, on the command line and under ``make test``.

``LABKIT_THREADS`` overrides the default: a number, or ``auto`` for the CPUs this process
may actually use (:func:`available_cpus`: the affinity mask and the cgroup CPU quota).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "thread_count", "set_pool_variables", "limit_threads"]

#: Thread-pool variables read by OpenMP, MKL, OpenBLAS and numexpr when they start.
POOL_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by this process's cgroup quota (v1 ``cpu.cfs_*`` or v2 ``cpu.max``)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            candidates = [(root / path.lstrip("/") / "cpu.max", None)]
        elif "cpu" in controllers.split(","):
            base = root / controllers / path.lstrip("/")
            if not base.exists():
                base = root / "cpu" / path.lstrip("/")
            candidates = [(base / "cpu.cfs_quota_us", base / "cpu.cfs_period_us")]
        else:
            continue
        for quota_file, period_file in candidates:
            try:
                if period_file is None:
                    quota, period = quota_file.read_text().split()
                else:
                    quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
            except (OSError, ValueError):
                continue
            if quota not in ("max", "-1") and int(period) > 0:
                return int(quota) / int(period)
    return None


def available_cpus() -> float:
    """CPUs this process may use: the affinity mask, capped by the cgroup CPU quota."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota = _cgroup_quota()
    return min(cpus, quota) if quota else cpus


def thread_count(environ=os.environ) -> int:
    """The thread count to use: ``LABKIT_THREADS`` (a number or ``auto``), else 1."""
    raw = environ.get("LABKIT_THREADS", "").strip().lower()
    if not raw:
        return 1
    if raw == "auto":
        return max(1, math.floor(available_cpus()))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"LABKIT_THREADS must be a positive integer or 'auto', got {raw!r}")
    return int(raw)


def set_pool_variables(n: int | None = None) -> int:
    """Set the thread-pool variables that the user has not set to ``n`` (default
    :func:`thread_count`), so pools that start later (numpy's BLAS, scikit-learn's OpenMP,
    PyTorch) start with ``n`` threads. Cheap: imports nothing."""
    n = thread_count() if n is None else int(n)
    for var in POOL_VARIABLES:
        os.environ.setdefault(var, str(n))
    return n


def limit_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default :func:`thread_count`) in PyTorch and in the BLAS/OpenMP
    pools already loaded; returns ``n``."""
    n = set_pool_variables(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    else:
        threadpool_limits(n)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n

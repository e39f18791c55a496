"""Scanner benchmarks: a large checkpoint, a nested archive, start-up without torch.

Run all three: ``python -m labkit.supplychain.bench`` (prints one JSON line each), or
one: ``python -c "from labkit.supplychain import bench; print(bench.bench_scan(1000))"``.

See Also
--------
notebooks/06_supply_chain.ipynb
labkit.supplychain.compare : detection and false alarms next to other scanners.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from .payloads import make_workdir
from .scanner import scan_file

__all__ = ["bench_scan", "bench_nested", "bench_startup", "nested_archive"]


def _zeros_checkpoint(path: Path, n: int, *, legacy: bool) -> Path:
    import torch

    torch.save({"big": torch.zeros(n), "fc.weight": torch.ones(8, 4)}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


def bench_scan(size_mb: float = 100, *, legacy: bool = False, repeats: int = 1) -> dict:
    """Save a ``size_mb`` MB torch checkpoint (zeros) in a temp dir, scan it, time it.

    Parameters
    ----------
    size_mb : float
        Approximate size in MB (10**6 bytes): a float32 tensor of ``size_mb * 250000``.
    legacy : bool
        Save in torch's legacy (non-zip) format.
    repeats : int
        Scans to time; the best is reported.

    Returns
    -------
    dict
        ``size_mb`` (actual), ``seconds`` (best scan), ``verdict``, ``format``.
    """
    if size_mb <= 0:
        raise ValueError(f"size_mb must be > 0, got {size_mb}")
    root = make_workdir("labkit-bench-")
    try:
        path = _zeros_checkpoint(root / "big.pt", int(size_mb * 250_000), legacy=legacy)
        best, report = float("inf"), None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            report = scan_file(path)
            best = min(best, time.perf_counter() - t0)
        return {"size_mb": round(path.stat().st_size / 1e6, 1), "seconds": round(best, 2),
                "verdict": report.verdict, "format": "legacy" if legacy else "zip"}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def nested_archive(size_kb: float = 100, *, depth: int = 4, fan: int = 4) -> bytes:
    """A benign archive of archives, about ``size_kb`` KB: zip / tar.gz / zip / ... with
    ``fan`` members per level and small pickles at the bottom (compressed members inside
    compressed members: the shape that costs quadratic time when each inner member is
    decompressed again from the start)."""
    import random

    rnd = random.Random(0)  # incompressible, distinct leaves: the file has the size asked
    leaf_size = max(8, int(size_kb * 1000 / fan ** depth))

    def build(level: int) -> bytes:
        if level == 0:
            return pickle.dumps({"w": rnd.randbytes(leaf_size)}, protocol=4)
        buf = io.BytesIO()
        if level % 2 == 1:
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for i in range(fan):
                    zf.writestr(f"part{i}.bin", build(level - 1))
        else:
            with tarfile.open(fileobj=buf, mode="w:gz") as tf:
                for i in range(fan):
                    data = build(level - 1)
                    info = tarfile.TarInfo(f"part{i}.bin")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    return build(depth)


def bench_nested(size_kb: float = 100, *, depth: int = 4, fan: int = 4) -> dict:
    """Scan :func:`nested_archive` and report the time and the work counters."""
    root = make_workdir("labkit-bench-")
    try:
        p = root / "nested.zip"
        p.write_bytes(nested_archive(size_kb, depth=depth, fan=fan))
        stats: dict = {}
        t0 = time.perf_counter()
        report = scan_file(p, stats=stats)
        return {"size_kb": round(p.stat().st_size / 1e3, 1),
                "seconds": round(time.perf_counter() - t0, 3), "verdict": report.verdict,
                "members": stats["members"], "decompressed_bytes": stats["decompressed"]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_startup(repeats: int = 5) -> dict:
    """Wall time of ``labkit scan --self-test`` in a fresh interpreter with torch blocked
    (``sys.modules['torch'] = None``), best of ``repeats``; and whether torch was loaded."""
    code = ("import sys; sys.modules['torch'] = None; "
            "from labkit.supplychain.cli import main; rc = main(['--self-test']); "
            "sys.exit(rc)")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=root)
    best = float("inf")
    rc = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            timeout=120).returncode
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, timeout=60)
    bare = time.perf_counter() - t0
    return {"seconds": round(best, 3), "python_alone_seconds": round(bare, 3),
            "self_test_exit": rc}


if __name__ == "__main__":  # pragma: no cover - a benchmark, run by hand
    print(json.dumps({"startup": bench_startup()}))
    print(json.dumps({"nested": bench_nested(100)}))
    print(json.dumps({"checkpoint_zip": bench_scan(1000)}))
    print(json.dumps({"checkpoint_legacy": bench_scan(1000, legacy=True)}))

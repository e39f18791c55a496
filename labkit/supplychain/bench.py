"""Scanner benchmark: how long scanning a large checkpoint takes (streamed).

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import shutil
import time

from .payloads import benign_checkpoint, make_workdir
from .scanner import scan_file

__all__ = ["bench_scan"]


def bench_scan(size_mb: float = 100, *, rng=0, repeats: int = 1) -> dict:
    """Build a ``size_mb`` MB torch checkpoint in a temp dir, scan it, report the time.

    Parameters
    ----------
    size_mb : float
        Approximate file size in MB (10**6 bytes); float32 tensor of ``size_mb * 250000``
        values.
    rng : int or numpy.random.Generator
    repeats : int
        Scans to time; the best is reported.

    Returns
    -------
    dict
        ``size_mb`` (actual), ``seconds`` (best scan), ``verdict``.

    Notes
    -----
    Run: ``python -c "from labkit.supplychain import bench_scan; print(bench_scan(100))"``.
    """
    if size_mb <= 0:
        raise ValueError(f"size_mb must be > 0, got {size_mb}")
    root = make_workdir("labkit-bench-")
    try:
        path = benign_checkpoint(root / "big.pt", rng=rng, n=int(size_mb * 250_000))
        best, report = float("inf"), None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            report = scan_file(path)
            best = min(best, time.perf_counter() - t0)
        return {"size_mb": round(path.stat().st_size / 1e6, 1), "seconds": round(best, 2),
                "verdict": report.verdict}
    finally:
        shutil.rmtree(root, ignore_errors=True)

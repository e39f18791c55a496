"""Run the notebook checks under other numeric code paths and measure each cell's spread.

A trained model's numbers depend on the processor: MKL (PyTorch's BLAS on x86-64) and
ATen choose their vector code path by CPU. This script simulates other processors on one
machine by forcing those paths, runs ``pytest --nbval-lax notebooks`` under each, and
prints, for every checked cell, how far its numbers moved from the stored ones and the
tolerance the cell allows.

    python tests/numeric_variants.py                 # every variant (make test-variants)
    python tests/numeric_variants.py avx2-machine    # some of them (CI runs this one)
    python tests/numeric_variants.py unset notebooks/01_label_flipping.ipynb   # some notebooks

Exit status 1 when any variant fails its checks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> environment overrides; "unset" runs the machine's own code paths.
VARIANTS = {
    "unset": {},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "mkl-sse4_2": {"MKL_CBWR": "SSE4_2"},
    "mkl-avx2": {"MKL_CBWR": "AVX2"},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "avx2-machine": {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}
CLEARED = ("MKL_CBWR", "ATEN_CPU_CAPABILITY")


def run_variant(name: str, dump: Path, notebooks=("notebooks",), workers: int = 2) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(VARIANTS[name], LAB_CHECK_DUMP=str(dump), MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
           *notebooks, "-n", str(workers), "--dist", "loadfile"]
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    return rc, time.perf_counter() - t0


def spread_table(dumps: dict[str, Path]) -> list[str]:
    """Markdown rows: per checked cell, the largest move of any number over all variants."""
    moves: dict = defaultdict(float)
    tol: dict = {}
    for name, folder in dumps.items():
        path = folder / "checks.jsonl"
        if not path.exists():
            continue
        for row in map(json.loads, path.read_text().splitlines()):
            key = (row["notebook"], row["cell"])
            tol[key] = row["tolerance"]
            diffs = [abs(a - b) for a, b in zip(row["stored"], row["new"])]
            moved = max(diffs, default=0.0) if row["same_text"] and len(row["stored"]) == len(row["new"]) else float("inf")
            moves[key] = max(moves[key], moved)
    rows = ["| notebook | cell | largest move over variants | tolerance (abs, rel) |", "|---|---|---|---|"]
    for key in sorted(moves):
        t = "exact" if tol[key] is None else f"{tol[key][0]:g}, {tol[key][1]:.0%}"
        rows.append(f"| {key[0]} | {key[1]} | {moves[key]:.3g} | {t} |")
    return rows


def main(argv: list[str]) -> int:
    notebooks = [a for a in argv if a.endswith(".ipynb")] or ["notebooks"]
    names = [a for a in argv if not a.endswith(".ipynb")] or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        dumps = {}
        for name in names:
            dumps[name] = Path(tmp) / name
            rc, seconds = run_variant(name, dumps[name], notebooks)
            print(f"variant {name}: {'passed' if rc == 0 else 'FAILED'} in {seconds:.0f} s", flush=True)
            if rc != 0:
                failed.append(name)
        print("\n".join(spread_table(dumps)))
    print(f"variants run: {', '.join(names)}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

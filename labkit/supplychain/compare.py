"""Detection and false alarms: ``labkit scan`` next to picklescan, modelscan, fickling and
ModelAudit, on the lesson's corpus and on the regression corpus of today's formats.

The four tools are not requirements of the lab. Install them in a throwaway virtual
environment and point this script at it::

    python3 -m venv /tmp/scanners
    /tmp/scanners/bin/pip install picklescan modelscan fickling modelaudit
    python -m labkit.supplychain.compare --scanners-venv /tmp/scanners [--corpus all] [--json]

Tools that are not found are skipped (and said so). Each tool runs with its default
settings on each file (ModelAudit with ``--no-cache``), in a scratch folder that is also
its ``HOME``; its verdict comes from its exit code: 0 ``clean``, 1 ``flagged``, anything
else ``error`` (modelscan's 3, "no supported files", is ``skipped``). ``labkit scan``'s
``unverified`` (exit 3) counts as detected: it fails a pipeline like a finding. Ground
truth is the corpora themselves: the lesson corpus's malicious files are proven to fire
with their vulnerable loader by ``tests/test_supplychain_corpus.py``; the regression rows
(:mod:`.regression`) by ``tests/test_scan_regression.py`` where their loader installs
here, and are built from the formats' specifications where it does not.

See Also
--------
labkit.supplychain.payloads : the corpus.
labkit.supplychain.bench : timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .output import table
from .payloads import ZOO_TARGETS, Artifact, build_corpus, make_workdir
from .regression import build_regression
from .scanner import scan_file

__all__ = ["THIRD_PARTY", "find_tools", "compare", "summarise", "main"]

THIRD_PARTY: dict[str, list[str]] = {
    "picklescan": ["picklescan", "--path"],
    "modelscan": ["modelscan", "-p"],
    "fickling": ["fickling", "--check-safety"],
    "modelaudit": ["modelaudit", "scan", "--no-cache"],
}
"""Command lines of the optional third-party scanners (not requirements of the lab)."""


def find_tools(venv: str | Path | None = None) -> dict[str, str]:
    """Executables of the third-party scanners: in ``venv/bin`` if given, else on PATH."""
    out = {}
    for name, cmd in THIRD_PARTY.items():
        exe = Path(venv) / "bin" / cmd[0] if venv else None
        if exe is not None and exe.exists():
            out[name] = str(exe)
        elif shutil.which(cmd[0]):
            out[name] = shutil.which(cmd[0])
    return out


def _verdict(name: str, exe: str, path: Path, timeout: float, cwd: Path) -> str:
    cmd = [exe] + THIRD_PARTY[name][1:] + [str(path)]
    env = dict(os.environ, HOME=str(cwd), NO_COLOR="1", PROMPTFOO_DISABLE_TELEMETRY="1",
               DO_NOT_TRACK="1")   # offline: no upload attempts (ModelAudit)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "error"
    rc = proc.returncode
    if b"Traceback (most recent call last)" in proc.stderr:
        return "error"  # the tool crashed (a missing dependency, a parser bug)
    if rc == 0:
        return "clean"
    if rc == 1:
        return "flagged"
    return "skipped" if (name == "modelscan" and rc == 3) else "error"


def compare(artifacts: Sequence[Artifact], tools: dict[str, str], *,
            timeout: float = 120) -> list[dict]:
    """One row per artifact: name, truth, and each scanner's verdict (the tools run in a
    scratch folder: fickling writes a results file into its working directory)."""
    rows = []
    scratch = make_workdir("labkit-compare-cwd-")
    try:
        for a in artifacts:
            verdict = scan_file(a.path, allow=ZOO_TARGETS).verdict
            row = {"artifact": a.name, "malicious": a.malicious,
                   "labkit": "flagged" if verdict == "unverified" else verdict}
            for name, exe in tools.items():
                row[name] = _verdict(name, exe, a.path, timeout, scratch)
            rows.append(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Per scanner: malicious flagged, benign flagged (false alarms), errors, skipped."""
    names = [k for k in rows[0] if k not in ("artifact", "malicious")] if rows else []
    n_bad = sum(r["malicious"] for r in rows)
    n_good = len(rows) - n_bad
    out = []
    for n in names:
        out.append({
            "scanner": n,
            "detected": f"{sum(r['malicious'] and r[n] == 'flagged' for r in rows)}/{n_bad}",
            "false_alarms": f"{sum((not r['malicious']) and r[n] == 'flagged' for r in rows)}/{n_good}",
            "errors": sum(r[n] == "error" for r in rows),
            "skipped": sum(r[n] == "skipped" for r in rows),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labkit.supplychain.compare",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--scanners-venv", default=None, help="venv holding the four tools")
    p.add_argument("--corpus", choices=("lesson", "regression", "all"), default="all",
                   help="the lesson's corpus, the regression corpus, or both (default)")
    p.add_argument("--json", action="store_true", help="print rows and summary as JSON")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    tools = find_tools(args.scanners_venv)
    missing = sorted(set(THIRD_PARTY) - set(tools))
    if missing:
        print(f"not installed, skipped: {', '.join(missing)}", file=sys.stderr)
    root = make_workdir("labkit-compare-")
    try:
        arts = []
        if args.corpus in ("lesson", "all"):
            arts += build_corpus(root / "corpus", rng=args.seed)
        if args.corpus in ("regression", "all"):
            arts += build_regression(root / "regression")
        rows = compare(arts, tools)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarise(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=1))
    else:
        print(table(rows))
        print()
        print(table(summary, title="summary"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

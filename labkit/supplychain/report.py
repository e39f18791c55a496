"""Small tables for the notebook: scan results, the config defence ladder, third-party
scanners. Plain text, so nbval can compare them.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .loaders import POLICIES, load_in_subprocess
from .payloads import ZOO_TARGETS, Artifact, build
from .scanner import ScanReport, scan_file

__all__ = ["Table", "table", "scan_table", "ladder", "LADDER_CONFIGS", "third_party_table",
           "THIRD_PARTY"]


@dataclass(frozen=True)
class Table:
    """Rows of equal keys, shown as a fixed-width text table."""

    rows: tuple[dict, ...]
    title: str = ""

    def column(self, key: str) -> list:
        """One column's values, in row order."""
        return [r[key] for r in self.rows]

    def __str__(self) -> str:
        if not self.rows:
            return f"{self.title}\n(no rows)" if self.title else "(no rows)"
        keys = list(self.rows[0])
        cells = [[str(k) for k in keys]] + [[str(r[k]) for k in keys] for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(keys))]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(keys))).rstrip()
                 for c in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    __repr__ = __str__


def table(rows: Sequence[dict], title: str = "") -> Table:
    """Wrap a list of dicts (same keys) as a :class:`Table`."""
    return Table(tuple(dict(r) for r in rows), title)


def _summary(report: ScanReport, width: int = 70) -> str:
    if not report.findings:
        return "-"
    f = report.findings[0]
    where = f"{f.member}: " if f.member else ""
    text = f"{f.kind}: {where}{f.detail}"
    more = f" (+{len(report.findings) - 1})" if len(report.findings) > 1 else ""
    if len(text) + len(more) > width:
        text = text[: width - len(more) - 3] + "..."
    return text + more


def scan_table(artifacts: Sequence[Artifact], *, allow=ZOO_TARGETS) -> Table:
    """Scan each artifact and tabulate: name, truth, verdict, first finding.

    Temp paths are not shown (so the table is the same on every machine).
    """
    rows = []
    for a in artifacts:
        r = scan_file(a.path, allow=allow)
        rows.append({"artifact": a.name, "malicious": a.malicious, "verdict": r.verdict,
                     "first finding": _summary(r).replace(str(a.path.parent), "<tmp>")})
    return table(rows)


LADDER_CONFIGS: tuple[str, ...] = ("yaml_allowed_targets", "os_system", "yaml_target_open",
                                   "reexport_target", "alias_target")
"""Configs the ladder runs: benign, os.system, an arbitrary function, a re-export, an alias."""


def _os_system_config(root: Path) -> Artifact:
    folder = root / "os_system"
    folder.mkdir(parents=True, exist_ok=False)
    p = folder / "shell.yaml"
    # Never runs: Hydra's block-list refuses it, and the sandbox refuses processes anyway.
    p.write_text("name: tiny\nmodel:\n  _target_: os.system\n  _args_: ['true']\n")
    return Artifact("os_system", p, "config", True, "config", None,
                    "_target_: os.system (what Hydra's block-list is built for)")


def ladder(root: str | os.PathLike, *, rng=None) -> Table:
    """Run the config defence ladder in the sandbox and tabulate who stops what.

    Rungs: ``config`` (plain ``hydra.utils.instantiate``, whose block-list refuses
    ``os.system``), ``config_prefix`` (the vendors' fix: every ``_target_`` must start
    with ``labkit.supplychain.zoo.``), ``config_exact`` (:func:`safe_instantiate` with
    :data:`ZOO_TARGETS`). Cells are ``loaded``, ``blocked`` or ``FIRED``.

    Parameters
    ----------
    root : path-like
        A temp folder this lesson made.
    rng : int or numpy.random.Generator, optional
    """
    root = Path(root)
    arts = [_os_system_config(root) if n == "os_system" else build(n, root, rng=rng)
            for n in LADDER_CONFIGS]
    items = [(a.name, a.path, pol, a.marker) for a in arts for pol in POLICIES]
    outcomes = load_in_subprocess(items, allow=ZOO_TARGETS)
    rows = []
    for i, a in enumerate(arts):
        row = {"config": a.name}
        for j, pol in enumerate(POLICIES):
            row[{"config": "hydra block-list", "config_prefix": "prefix allow-list",
                 "config_exact": "exact allow-list"}[pol]] = outcomes[i * len(POLICIES) + j].verdict
        rows.append(row)
    return table(rows)


THIRD_PARTY: dict[str, list[str]] = {
    "picklescan": ["picklescan", "--path"],
    "modelscan": ["modelscan", "-p"],
    "fickling": ["fickling", "--check-safety"],
}
"""Command lines of the optional third-party scanners (not requirements of the lab)."""


def _tool(name: str) -> str | None:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else shutil.which(name)


def third_party_table(artifacts: Sequence[Artifact], *, timeout: float = 60) -> Table:
    """What picklescan / modelscan / fickling say about each artifact, when installed.

    A tool's verdict is ``flagged`` when it exits non-zero with a finding (exit 1),
    ``clean`` on exit 0 and ``error`` otherwise. Tools that are not installed are left
    out; with none installed the table has one note row.
    """
    tools = {n: _tool(cmd[0]) for n, cmd in THIRD_PARTY.items()}
    tools = {n: t for n, t in tools.items() if t}
    if not tools:
        return table([{"note": "none of picklescan, modelscan, fickling is installed"}])
    rows = []
    for a in artifacts:
        row = {"artifact": a.name, "malicious": a.malicious}
        for n, exe in tools.items():
            cmd = [exe] + THIRD_PARTY[n][1:] + [str(a.path)]
            try:
                rc = subprocess.run(cmd, capture_output=True, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
            row[n] = {0: "clean", 1: "flagged"}.get(rc, f"error({rc})")
        rows.append(row)
    return table(rows)

"""Small tables for the notebook: scan results, the config defence ladder, third-party
scanners. Plain text, so nbval can compare them.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .loaders import POLICIES, load_artifacts, load_in_subprocess
from .payloads import ZOO_TARGETS, Artifact, build
from .scanner import ScanReport, scan_file

__all__ = ["Table", "table", "describe", "scan_table", "scan_summary", "ladder", "LADDER_CONFIGS",
           "third_party_table", "THIRD_PARTY", "opcode_table", "fire_table", "compare_loaders",
           "readings_table"]


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


_BYTE = re.compile(r" \(byte \d+\)|@\d+")


def _summary(report: ScanReport, width: int = 70) -> str:
    if not report.findings:
        return "-"
    f = report.findings[0]
    where = f"{f.member}: " if f.member else ""
    text = _BYTE.sub("", f"{f.kind}: {where}{f.detail}")  # offsets vary with temp paths
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

    Verdicts come from exit codes: 0 ``clean``, 1 ``flagged``; modelscan's 3 ("no
    supported files") is ``skipped``; anything else is ``error(N)``. Tools run with their
    default settings (picklescan without ``--strict``). Tools that are not installed are
    left out; with none installed the table has one note row.

    Notes
    -----
    The lesson's canaries call ``open`` / ``Path.write_text`` rather than ``os.system``;
    scanners built on block-lists of dangerous names can pass them, which is the same
    weakness as Hydra's block-list, not proof that they would miss a real payload.
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
            labels = {0: "clean", 1: "flagged", **({3: "skipped"} if n == "modelscan" else {})}
            row[n] = labels.get(rc, f"error({rc})")
        rows.append(row)
    return table(rows)


def scan_summary(artifacts: Sequence[Artifact], *, allow=ZOO_TARGETS) -> dict:
    """Flag rates of the scanner on a corpus, and whether any canary fired meanwhile.

    Canary markers left by earlier (deliberate) loads are set aside first, so
    ``canaries_fired_during_scan`` counts only markers that scanning created.

    Returns
    -------
    dict
        ``malicious_flagged``, ``n_malicious``, ``benign_flagged``, ``n_benign``,
        ``canaries_fired_during_scan``.
    """
    for a in artifacts:
        if a.marker is not None and a.marker.exists():
            a.marker.unlink()  # re-arm: markers from earlier loads are not scan results
    verdicts = [(a.malicious, scan_file(a.path, allow=allow).flagged) for a in artifacts]
    return {"malicious_flagged": sum(m and f for m, f in verdicts),
            "n_malicious": sum(m for m, _ in verdicts),
            "benign_flagged": sum((not m) and f for m, f in verdicts),
            "n_benign": sum(not m for m, _ in verdicts),
            "canaries_fired_during_scan": sum(bool(a.marker and a.marker.exists())
                                              for a in artifacts)}


def opcode_table(data: bytes, *, limit: int = 20, width: int = 40) -> Table:
    """The first ``limit`` opcodes of a pickle: byte offset, opcode, argument."""
    from .scanner import pickle_ops

    rows = []
    for pos, name, arg in pickle_ops(data, limit=limit):
        text = "" if arg is None else repr(arg)
        rows.append({"byte": pos, "opcode": name,
                     "argument": text if len(text) <= width else text[: width - 3] + "..."})
    return table(rows)


def fire_table(artifacts: Sequence[Artifact]) -> Table:
    """Load each artifact with its own (vulnerable) loader in the sandbox; one row each."""
    outcomes = load_artifacts(artifacts)
    return table([{"artifact": a.name, "carrier": a.carrier, "loader": a.loader,
                   "result": o.verdict} for a, o in zip(artifacts, outcomes)])


def compare_loaders(artifacts: Sequence[Artifact], loaders: Sequence[str], *,
                    allow=ZOO_TARGETS) -> Table:
    """Each artifact through each loader (one sandboxed child): ``loaded``, ``blocked``,
    ``error`` or ``FIRED``. An ``error`` after ``FIRED`` is still ``FIRED``."""
    items = [(a.name, a.path, ld, a.marker) for a in artifacts for ld in loaders]
    outs = load_in_subprocess(items, allow=allow)
    rows = []
    for i, a in enumerate(artifacts):
        row = {"artifact": a.name}
        for j, ld in enumerate(loaders):
            row[ld] = outs[i * len(loaders) + j].verdict
        rows.append(row)
    return table(rows)


def describe(artifacts: Sequence[Artifact]) -> Table:
    """Name, carrier, victim loader and trick of each artifact."""
    return table([{"artifact": a.name, "carrier": a.carrier, "loader": a.loader,
                   "trick": a.description} for a in artifacts])


_READING_KINDS = {
    "pickle": {"global", "unknown-global", "extension", "malformed-pickle", "unmodelled"},
    "yaml": {"target", "resolver", "yaml-python-tag", "config-error"},
    "json": {"target", "resolver", "config-error"}, "toml": {"target", "resolver"},
}
_READERS = {"pickle": "pickle.load, numpy.load(allow_pickle=True), torch.load",
            "yaml": "yaml.safe_load -> a config for instantiate",
            "json": "json.load -> a config for instantiate",
            "toml": "tomllib.load -> a config for instantiate",
            "tar": "tarfile.open", "zip": "zipfile / numpy.load / torch.load",
            "npy": "numpy.load", "safetensors": "safetensors.safe_open"}


def readings_table(path: str | os.PathLike, *, allow=ZOO_TARGETS, width: int = 48) -> Table:
    """Each format the scanner read the file as (top level only), who reads it that way,
    and what that reading found: one file, several readings for a polyglot."""
    r = scan_file(path, allow=allow)
    rows = []
    for entry in r.formats:
        member, _, fmt = entry.partition("=")
        if member != "-" or fmt == "text":
            continue
        kinds = _READING_KINDS.get(fmt, set())
        found = [f for f in r.findings if not f.member and f.kind in kinds]
        text = "; ".join(_BYTE.sub("", f"{f.kind}: {f.detail}") for f in found) or "-"
        rows.append({"reading": fmt, "who reads it this way": _READERS.get(fmt, "-"),
                     "finding": text if len(text) <= width else text[: width - 3] + "..."})
    return table(rows)

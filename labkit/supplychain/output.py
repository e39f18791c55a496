"""Scan reports as text, JSON or SARIF 2.1.0 (for code-scanning services), and rows as a
fixed-width text :class:`Table` (the comparison with other scanners prints one).

SARIF: one rule per finding kind (:data:`~labkit.supplychain.findings.KINDS`; ``unverified``,
bytes in no format the scanner reads, is its own rule, level ``warning``), one result
per finding, located by the file's URI plus a byte offset (``region.byteOffset``) for
pickle opcodes and headers, or a line (``region.startLine``) for configs. Members of
archives are named in the message and in ``properties.member``.

References
----------
OASIS, "Static Analysis Results Interchange Format (SARIF) Version 2.1.0" (2020).

See Also
--------
labkit.supplychain.cli
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .findings import KINDS, ScanReport

__all__ = ["to_text", "to_json", "to_sarif", "SARIF_SCHEMA", "Table", "table"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"unreadable": "error", "budget": "warning", "config-error": "warning",
          "unreadable-member": "warning", "malformed": "warning", "unverified": "warning",
          "template-trigger": "warning"}


def to_text(reports: Sequence[ScanReport]) -> str:
    """One tab-separated line per finding: file, member, kind, detail."""
    return "\n".join(f.line() for r in reports for f in r.findings)


def to_json(reports: Sequence[ScanReport]) -> dict:
    """``{"files": [{"path", "verdict", "formats", "findings": [...]}]}``."""
    return {"files": [{"path": r.path, "verdict": r.verdict, "formats": list(r.formats),
                       "findings": [{"member": f.member, "kind": f.kind, "detail": f.detail,
                                     "offset": f.offset, "line": f.lineno}
                                    for f in r.findings]} for r in reports]}


def _uri(path: str) -> str:
    p = Path(path)
    return p.as_posix() if not p.is_absolute() else p.as_uri()


def to_sarif(reports: Sequence[ScanReport], *, version: str = "0.1.0") -> dict:
    """A SARIF 2.1.0 log with one run of ``labkit scan``."""
    kinds = sorted({f.kind for r in reports for f in r.findings} | set(KINDS))
    rules = [{"id": k, "name": "".join(w.title() for w in k.split("-")),
              "shortDescription": {"text": KINDS.get(k, k)},
              "defaultConfiguration": {"level": _LEVEL.get(k, "error")}} for k in kinds]
    index = {k: i for i, k in enumerate(kinds)}
    results = []
    for r in reports:
        for f in r.findings:
            region = {}
            if f.offset is not None and not f.member:
                region["byteOffset"] = f.offset
            if f.lineno is not None and not f.member:
                region["startLine"] = f.lineno
            loc = {"physicalLocation": {"artifactLocation": {"uri": _uri(r.path)}}}
            if region:
                loc["physicalLocation"]["region"] = region
            where = f" in {f.member}" if f.member else ""
            res = {"ruleId": f.kind, "ruleIndex": index[f.kind],
                   "level": _LEVEL.get(f.kind, "error"),
                   "message": {"text": f"{f.detail}{where}"}, "locations": [loc]}
            if f.member:
                res["properties"] = {"member": f.member}
                if f.offset is not None:
                    res["properties"]["memberByteOffset"] = f.offset
                if f.lineno is not None:
                    res["properties"]["memberLine"] = f.lineno
            results.append(res)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "labkit scan", "version": version,
                            "informationUri": "https://github.com/",
                            "rules": rules}},
        "results": results,
        "artifacts": [{"location": {"uri": _uri(r.path)}} for r in reports],
    }]}


def dumps(doc: dict) -> str:
    """JSON text of a report document."""
    return json.dumps(doc, indent=1)


@dataclass(frozen=True)
class Table:
    """Rows of equal keys, shown as a fixed-width text table (plain text, so a notebook
    can compare it)."""

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

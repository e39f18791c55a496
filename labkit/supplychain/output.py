"""Scan reports as text, JSON or SARIF 2.1.0 (for code-scanning services).

SARIF: one rule per finding kind (:data:`~labkit.supplychain.findings.KINDS`), one result
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
from pathlib import Path
from typing import Sequence

from .findings import KINDS, ScanReport

__all__ = ["to_text", "to_json", "to_sarif", "SARIF_SCHEMA"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"unreadable": "error", "budget": "warning", "config-error": "warning",
          "unreadable-member": "warning", "malformed": "warning"}


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

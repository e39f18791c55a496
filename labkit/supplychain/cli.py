"""``python -m labkit scan PATH... [--json] [--allow NAME ...]``.

Exit status: 0 every file clean, 1 at least one finding, 2 some input could not be read.
One line per finding: file, member, kind, detail (tab-separated).

See Also
--------
notebooks/06_supply_chain.ipynb
labkit.supplychain.scanner.scan_paths
"""

from __future__ import annotations

import argparse
import json
import sys

from .scanner import scan_paths

__all__ = ["add_parser", "run_scan", "main"]


def add_parser(subparsers) -> None:
    """Add the ``scan`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "scan", help="scan model files for pickle payloads and _target_ metadata",
        description="Statically scan model files and folders (pickles, torch/numpy "
                    "archives, safetensors, YAML/JSON configs, .nemo tars). Nothing is "
                    "loaded or executed. Exit 0 clean, 1 findings, 2 unreadable input.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="exact name to accept as a pickle global or _target_ (repeatable)")
    p.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace) -> int:
    """Handler for ``scan``: print findings, return the exit status."""
    reports = scan_paths(args.paths, allow=args.allow)
    if args.json:
        doc = {"files": [{"path": r.path, "verdict": r.verdict,
                          "findings": [{"member": f.member, "kind": f.kind, "detail": f.detail}
                                       for f in r.findings]} for r in reports]}
        print(json.dumps(doc, indent=1))
    else:
        for r in reports:
            for f in r.findings:
                print(f.line())
        n_bad = sum(r.flagged for r in reports)
        print(f"scanned {len(reports)} file(s): {n_bad} with findings", file=sys.stderr)
    if not reports or any(r.unreadable for r in reports):
        return 2
    return 1 if any(r.flagged for r in reports) else 0


def main(argv: list[str] | None = None) -> int:
    """``scan`` on its own (for notebooks and scripts): ``main(["model.pt", "--json"])``."""
    parser = argparse.ArgumentParser(prog="labkit")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["scan", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)

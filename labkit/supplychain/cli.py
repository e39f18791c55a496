"""``python -m labkit scan PATH... [--format text|json|sarif] [--allow NAME ...]``.

Exit status: 0 every file clean, 1 at least one finding, 2 some input could not be read,
3 no finding but some file (or member) is in no format the scanner reads (``unverified``:
not clean; a pre-commit hook fails on it like on any non-zero status). 2 wins over 1, 1
over 3.
``--format text`` (default): one line per finding, file, member, kind, detail (tab-separated);
``--json`` is ``--format json``; ``--format sarif`` writes SARIF 2.1.0 for code scanning.
``--self-test`` scans a harmless test pickle that must be flagged and exits 0 if it is.
The text format ends with a one-line summary on stderr, so that stdout holds only findings
(for pipes); :func:`scan`, for notebooks, prints everything to stdout.

This module imports only the scanner (no torch, no lessons), so it works where torch does
not, and can run as a pre-commit hook (``.pre-commit-hooks.yaml``, id ``labkit-scan``).

See Also
--------
notebooks/06_supply_chain.ipynb
labkit.supplychain.scanner.scan_paths
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run_scan", "main", "scan", "exit_status"]


def add_parser(subparsers) -> None:
    """Add the ``scan`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "scan", help="scan model files for pickle payloads and _target_ metadata",
        description="Statically scan model files and folders (pickles, torch/numpy/joblib "
                    "files, zip/tar archives, safetensors, YAML/JSON/TOML configs). Every "
                    "file is read in every format it is valid as; nothing is loaded or "
                    "executed. Exit 0 clean, 1 findings, 2 unreadable input, 3 unverified "
                    "(bytes in no format the scanner reads).")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders")
    p.add_argument("--format", choices=("text", "json", "sarif"), default=None,
                   help="output format (default text)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="exact name to accept as a pickle global, _target_ or OmegaConf "
                        "resolver (repeatable)")
    p.add_argument("--self-test", action="store_true",
                   help="scan a harmless test pickle that must be flagged; exit 0 if it is")
    p.set_defaults(func=run_scan)


def run_scan(args: argparse.Namespace, *, summary_file=None) -> int:
    """Handler for ``scan``: print findings, return the exit status. The text format's
    summary line goes to ``summary_file`` (default: stderr)."""
    if args.self_test:
        from .selftest import self_test

        ok, message = self_test()
        print(message)
        return 0 if ok else 1
    if not args.paths:
        print("error: scan needs at least one PATH (or --self-test)", file=sys.stderr)
        return 2
    from . import output

    fmt = args.format or ("json" if args.json else "text")
    from .scanner import scan_paths

    reports = scan_paths(args.paths, allow=args.allow)
    if fmt == "json":
        print(output.dumps(output.to_json(reports)))
    elif fmt == "sarif":
        print(output.dumps(output.to_sarif(reports)))
    else:
        text = output.to_text(reports)
        if text:
            print(text)
        n_bad = sum(r.flagged for r in reports)
        n_unverified = sum(r.verdict == "unverified" for r in reports)
        more = f" ({n_unverified} only unverified)" if n_unverified else ""
        print(f"scanned {len(reports)} file(s): {n_bad} with findings{more}",
              file=sys.stderr if summary_file is None else summary_file)
    if not reports or any(r.unreadable for r in reports):
        return 2
    return exit_status(reports)


def exit_status(reports) -> int:
    """0 clean, 1 a finding, 2 an unreadable input, 3 only ``unverified`` findings."""
    if not reports or any(r.unreadable for r in reports):
        return 2
    verdicts = {r.verdict for r in reports}
    if "flagged" in verdicts:
        return 1
    return 3 if "unverified" in verdicts else 0


def main(argv: list[str] | None = None) -> int:
    """``scan`` on its own (for notebooks, scripts and pre-commit):
    ``main(["model.pt", "--format", "sarif"])``."""
    parser = _Parser(prog="labkit")
    add_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["scan", *(sys.argv[1:] if argv is None else argv)])
    except _UsageError as exc:   # one line, not argparse's usage block
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return args.func(args)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{message} (see {self.prog} --help)")


def scan(paths, *, allow=(), format: str = "text") -> int:
    """What ``python -m labkit scan PATH... [--allow NAME ...] [--format F]`` prints, all of it
    on stdout (the summary line too: a notebook shows stderr as an error), and its exit
    status: 0 clean, 1 findings, 2 unreadable input, 3 unverified. ``scan(["model.pt"], allow=["m.Net"])``."""
    if format not in ("text", "json", "sarif"):
        raise ValueError(f"format must be 'text', 'json' or 'sarif', got {format!r}")
    one = isinstance(paths, str) or hasattr(paths, "__fspath__")
    allow = [allow] if isinstance(allow, str) else allow
    args = argparse.Namespace(paths=[str(p) for p in ([paths] if one else paths)],
                              allow=[str(a) for a in allow], format=format, json=False,
                              self_test=False)
    return run_scan(args, summary_file=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())

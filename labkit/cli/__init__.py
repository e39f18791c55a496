"""The command line: ``python -m labkit COMMAND``; one module per group of commands.

- :mod:`.experiments`: ``list``, ``run``, ``tour`` (the registry and :func:`labkit.run`);
- :mod:`.defence_in_depth`: ``audit``, ``manifest``, ``challenge`` (lesson 5);
- :mod:`.reproduce`: ``reproduce`` (:mod:`labkit.claims`, every number the lab states);
- ``bench`` (:mod:`labkit.bench`), ``progress`` (:mod:`labkit.progress`) and ``scan``
  (:mod:`labkit.supplychain.cli`, which never imports PyTorch).

Exit codes: 0 success, 1 a check found something (``scan``, ``manifest verify``), 2 unknown
name or bad value (one line on stderr, before any work starts).
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "COMMAND_GROUPS"]

#: Modules that bring their own subcommands; each has ``add_parser(subparsers)``. Each is
#: imported only when the parser is built, and none imports PyTorch at import time.
COMMAND_GROUPS: tuple = ("labkit.cli.experiments", "labkit.cli.defence_in_depth", "labkit.cli.reproduce",
                         "labkit.bench",
                         "labkit.supplychain.cli", "labkit.progress")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labkit",
                                     description="The Poisoning Lab's attacks and defences.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError) as exc:   # bad input: one line, exit code 2
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2

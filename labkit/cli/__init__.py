"""The command line: ``python -m labkit COMMAND``; one module per group of commands.

- :mod:`.experiments`: ``list``, ``run``, ``tour`` (the registry and :func:`labkit.run`);
- :mod:`.defence_in_depth`: ``audit``, ``manifest``, ``challenge`` (lesson 5);
- :mod:`.reproduce`: ``reproduce`` (:mod:`labkit.claims`, every number the lab states);
- ``bench`` (:mod:`labkit.bench`), ``progress`` (:mod:`labkit.progress`) and ``scan``
  (:mod:`labkit.supplychain.cli`, which never imports PyTorch);
- :mod:`.validate`: the argument types and file checks the commands share.

Exit codes: 0 success, 1 a check found something (``scan``, ``manifest verify``, ``progress
verify``), 2 bad input: an unknown name, a bad value, a missing, unreadable or special file
(a FIFO or a device is never opened). Bad input gets one line on stderr, ``error: ...``, and,
wherever it can be checked first, nothing has started yet (no work, no progress bar, no file
written). 130 when interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import zipfile

__all__ = ["main", "build_parser", "COMMAND_GROUPS", "UsageError", "Parser", "BAD_INPUT"]

#: Modules that bring their own subcommands; each has ``add_parser(subparsers)``. Each is
#: imported only when the parser is built, and none imports PyTorch at import time.
COMMAND_GROUPS: tuple = ("labkit.cli.experiments", "labkit.cli.defence_in_depth", "labkit.cli.reproduce",
                         "labkit.cli.handout",
                         "labkit.bench",
                         "labkit.supplychain.cli", "labkit.progress")

#: Exceptions that mean "the input is bad" (a value, a file, a name), not "the lab is broken".
#: ``ValueError`` covers JSON and Unicode errors; ``OSError`` missing and unreadable files.
BAD_INPUT = (ValueError, TypeError, KeyError, OSError, EOFError, OverflowError, zipfile.BadZipFile)
#: Lab errors that are bad input too, matched only if their module is already imported.
_LAB_ERRORS = (("labkit.data", "DatasetUnavailable"),)


class UsageError(Exception):
    """A command line that ``argparse`` rejects (raised instead of printing the usage block)."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``error()`` raises :class:`UsageError`
    (subcommand parsers inherit the class)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m labkit", description="The Poisoning Lab's attacks and defences.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(name).add_parser(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        msg = f"{where}: {exc.strerror}" if where != "" else exc.strerror
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


def _is_lab_error(exc: BaseException) -> bool:
    for module, name in _LAB_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def fail(exc: BaseException) -> int:
    """Print ``exc`` as one line, ``error: ...``, on stderr; return 2."""
    sys.stdout.flush()
    print(f"error: {_one_line(exc)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["scan"]:   # the scanner needs none of the lab: works after a light `pip install .`
        from ..supplychain.cli import main as scan

        return scan(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:   # a light install (`pip install .`) has the scanner only
        if exc.name is None or exc.name.startswith("labkit"):
            raise
        print(f"error: {exc}: the lab's commands need its dependencies, pip install 'labkit[lab]' "
              "(the scanner alone: labkit-scan)", file=sys.stderr)
        return 2
    except (UsageError, *BAD_INPUT) as exc:
        return fail(exc)
    except Exception as exc:
        if _is_lab_error(exc):
            return fail(exc)
        raise

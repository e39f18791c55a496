"""Checks of command-line input, run before any work starts: each fails with a one-line reason
(:func:`labkit.cli.main` prints it as ``error: ...`` and exits 2).

- argument types for ``argparse`` (``type=rate``, ``type=seed``, ``type=count(10**6)``,
  ``type=input_file``, ``type=output_file(".npz")``): a NaN, an infinity, a number out of
  range or a path of the wrong kind is refused while the arguments are parsed;
- :func:`regular_file` and :func:`read_text`: a file must be a regular file before it is
  opened. A FIFO blocks ``open()`` until a writer appears and a device such as ``/dev/zero``
  never ends, so special files are refused from ``os.stat`` alone, never opened.

Standard library only.
"""
from __future__ import annotations

import argparse
import math
import os
import stat
from pathlib import Path

__all__ = ["rate", "seed", "count", "input_file", "output_file", "output_dir", "regular_file",
           "read_text", "MAX_SEED", "MAX_TEXT"]

#: Seeds are unsigned 32-bit integers (what numpy's legacy seeding and most loaders accept).
MAX_SEED = 2**32 - 1
#: The largest text file a command reads whole (flag files, keys, manifests).
MAX_TEXT = 256 << 20


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def rate(text: str) -> float:
    """An ``argparse`` type: a finite number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def seed(text: str) -> int:
    """An ``argparse`` type: an integer seed in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {text}")
    return value


def count(upper: int, lower: int = 1):
    """An ``argparse`` type: an integer in [lower, upper] (``type=count(10**6)``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in [{lower}, {upper}], got {text!r}") from None
        if not lower <= value <= upper:
            raise argparse.ArgumentTypeError(f"must be in [{lower}, {upper}], got {text}")
        return value

    parse.__name__ = "count"
    return parse


def regular_file(path, what: str = "file") -> Path:
    """``path`` if it is a regular file (following links); ``ValueError`` or
    ``FileNotFoundError`` otherwise. The file is not opened."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{what} {str(p)!r} is {_kind(mode)}, not a regular file")
    return p


def read_text(path, what: str = "file", *, max_bytes: int = MAX_TEXT) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``max_bytes``), or a one-line error."""
    p = regular_file(path, what)
    if p.stat().st_size > max_bytes:
        raise ValueError(f"{what} {str(p)!r} is larger than {max_bytes >> 20} MiB")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {str(p)!r} is not UTF-8 text") from None


def input_file(text: str) -> Path:
    """An ``argparse`` type: an existing regular file."""
    try:
        return regular_file(text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_output(p: Path) -> None:
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{str(p)!r}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise argparse.ArgumentTypeError(f"{str(p)!r} is {_kind(mode)}; give a file name")


def output_file(suffix: str | None = None, *, parent_must_exist: bool = True):
    """An ``argparse`` type: a file to write, ending in ``suffix``; not a folder, FIFO or device,
    in a folder that exists (``type=output_file(".npz")``)."""
    def parse(text: str) -> Path:
        p = Path(text)
        if text.endswith(os.sep) or p.name in ("", ".", ".."):
            raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
        _check_output(p)
        if suffix and p.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"{text!r} must end in {suffix}")
        parent = p.parent
        if parent_must_exist and not parent.is_dir():
            raise argparse.ArgumentTypeError(f"folder {str(parent)!r} does not exist")
        return p

    parse.__name__ = "output_file"
    return parse


def output_dir(text: str) -> Path:
    """An ``argparse`` type: a folder to write into (created if missing), not a file."""
    p = Path(text)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return p
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        raise argparse.ArgumentTypeError(f"{text!r} is {_kind(mode)}, not a folder")
    return p

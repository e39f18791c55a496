"""Hash pinning: a small lock file of SHA-256 digests, verified before a model is loaded.

The same idea as ``pip install --require-hashes`` for packages, applied to model files:
record the digest when you first review a file (or take it from the publisher), and
refuse to load any file whose bytes changed since. A hash proves integrity against the
pinned bytes, not that those bytes are safe: pin *after* scanning and reviewing.

The lock file is JSON: ``{"version": 1, "files": {"relative/path": "sha256 hex"}}``,
with paths relative to the lock file's folder.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

__all__ = ["PinError", "sha256_file", "write_lock", "read_lock", "verify", "verify_all"]

_CHUNK = 1 << 20


class PinError(ValueError):
    """A file is missing from the lock, or its digest does not match."""


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file, streamed in 1 MiB chunks; lowercase hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        raise PinError(f"{path} is not under the lock file's folder {base}") from None


def write_lock(paths: Iterable[str | os.PathLike], lock_path: str | os.PathLike) -> Path:
    """Record the SHA-256 of each file in ``lock_path`` (merging with an existing lock).

    Parameters
    ----------
    paths : iterable of path-like
        Files under the lock file's folder.
    lock_path : path-like

    Returns
    -------
    pathlib.Path
        The lock file.
    """
    lock_path = Path(lock_path)
    base = lock_path.parent
    files = read_lock(lock_path) if lock_path.exists() else {}
    for p in paths:
        p = Path(p)
        key = _key(p, base)
        files[key] = sha256_file(p)
    lock_path.write_text(json.dumps({"version": 1, "files": dict(sorted(files.items()))},
                                    indent=1) + "\n")
    return lock_path


def read_lock(lock_path: str | os.PathLike) -> dict[str, str]:
    """The ``{relative path: digest}`` mapping of a lock file."""
    data = json.loads(Path(lock_path).read_text())
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(
            data.get("files"), dict):
        raise PinError(f"{lock_path}: not a version-1 lock file")
    return {str(k): str(v) for k, v in data["files"].items()}


def verify(path: str | os.PathLike, lock_path: str | os.PathLike) -> str:
    """Check a file against the lock before loading it.

    Parameters
    ----------
    path, lock_path : path-like

    Returns
    -------
    str
        The verified digest.

    Raises
    ------
    PinError
        When the file is not pinned or its digest differs.
    """
    lock_path = Path(lock_path)
    key = _key(Path(path), lock_path.parent)
    files = read_lock(lock_path)
    if key not in files:
        raise PinError(f"{key} is not pinned in {lock_path.name}")
    digest = sha256_file(path)
    if digest != files[key]:
        raise PinError(f"{key}: sha256 {digest[:12]}... does not match the pinned "
                       f"{files[key][:12]}...")
    return digest


def verify_all(lock_path: str | os.PathLike) -> dict[str, bool]:
    """Every pinned file -> whether it exists and matches."""
    lock_path = Path(lock_path)
    out = {}
    for key, want in read_lock(lock_path).items():
        p = lock_path.parent / key
        out[key] = p.is_file() and sha256_file(p) == want
    return out

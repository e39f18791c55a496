"""Data provenance: a signed manifest of a trusted dataset, and verification against it.

A manifest records one SHA-256 digest per row (pixels and label), a root hash over them,
where the data came from and when, and an HMAC-SHA256 signature made with a key the data
owner keeps. Later, anyone holding the key can check a copy of the data: the signature
proves the manifest itself was not edited, and aligning the row digests (a diff, like
``git diff`` on lines) names exactly the rows that were added, removed or modified.

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..types import Dataset

__all__ = ["row_digests", "create_manifest", "sign", "is_authentic", "verify", "save_manifest",
           "load_manifest", "simulate_tampering", "ProvenanceReport", "ManifestError"]

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "data" / "manifests"


class ManifestError(ValueError):
    """The manifest is malformed or its signature does not match."""


def row_digests(data: Dataset) -> list[str]:
    """SHA-256 hex digest of every row: its float32 pixels followed by its int64 label."""
    X = np.ascontiguousarray(data.X, np.float32).reshape(len(data), -1)
    y = np.ascontiguousarray(data.y, np.int64)
    return [hashlib.sha256(X[i].tobytes() + y[i].tobytes()).hexdigest() for i in range(len(data))]


def _root(digests) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _payload(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict, key: bytes) -> str:
    """HMAC-SHA256 of the manifest's canonical JSON (every field except ``signature``)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ValueError("key must be at least 16 bytes (e.g. secrets.token_bytes(32))")
    return hmac.new(bytes(key), _payload(manifest), hashlib.sha256).hexdigest()


def create_manifest(data: Dataset, *, key: bytes, source: str, created: str | None = None) -> dict:
    """A signed manifest of ``data``.

    Parameters
    ----------
    data : Dataset
        The trusted data, in its canonical order.
    key : bytes
        The signing key (at least 16 bytes). Keep it out of the repository.
    source : str
        Where the data came from (a URL, a vendor, a loader call).
    created : str, optional
        ISO-8601 time stamp; defaults to now (UTC). Pass one to get reproducible manifests.
    """
    digests = row_digests(data)
    manifest = {"format": "labkit-manifest/1", "name": data.name, "source": source,
                "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "n_rows": len(digests), "image_shape": list(data.image_shape),
                "n_classes": data.n_classes, "root": _root(digests), "rows": digests}
    manifest["signature"] = sign(manifest, key)
    return manifest


@dataclass(frozen=True)
class ProvenanceReport:
    """What :func:`verify` found. Indices of ``added``/``modified`` refer to the candidate,
    ``removed`` to the manifest's rows."""

    added: tuple
    removed: tuple
    modified: tuple

    @property
    def ok(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def __repr__(self) -> str:
        return (f"ProvenanceReport(ok={self.ok}, added={len(self.added)}, removed={len(self.removed)}, "
                f"modified={len(self.modified)})")

    def flagged(self, n: int) -> np.ndarray:
        """Boolean mask over the candidate's ``n`` rows: added or modified."""
        mask = np.zeros(n, bool)
        mask[list(self.added) + list(self.modified)] = True
        return mask


def is_authentic(manifest: dict, *, key: bytes) -> bool:
    """True when ``manifest`` carries a valid signature for ``key`` and a consistent root hash."""
    if not all(f in manifest for f in ("rows", "root", "signature")):
        return False
    return (hmac.compare_digest(sign(manifest, key), str(manifest["signature"]))
            and _root(manifest["rows"]) == manifest["root"])


def verify(data: Dataset, manifest: dict, *, key: bytes) -> ProvenanceReport:
    """Check ``data`` against a signed ``manifest``.

    Raises :class:`ManifestError` when the signature (or the root hash) does not match: an
    edited manifest is never trusted. Otherwise aligns the candidate's row digests with the
    manifest's (``difflib.SequenceMatcher``, junk heuristics off) and reports rows that were
    inserted (added), deleted (removed) or replaced (modified). A replaced block of unequal
    length counts its overlap as modified and the rest as added or removed.
    """
    for field in ("rows", "root", "signature"):
        if field not in manifest:
            raise ManifestError(f"manifest has no {field!r} field")
    if not is_authentic(manifest, key=key):
        raise ManifestError("manifest signature does not match: it was edited or signed with another key")
    old, new = list(manifest["rows"]), row_digests(data)
    added, removed, modified = [], [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "insert":
            added += range(j1, j2)
        elif tag == "delete":
            removed += range(i1, i2)
        elif tag == "replace":
            m = min(i2 - i1, j2 - j1)
            modified += range(j1, j1 + m)
            added += range(j1 + m, j2)
            removed += range(i1 + m, i2)
    return ProvenanceReport(tuple(added), tuple(removed), tuple(modified))


def save_manifest(manifest: dict, path=None) -> Path:
    """Write ``manifest`` as JSON (default: ``data/manifests/<name>.json``); returns the path."""
    path = Path(path) if path is not None else MANIFEST_DIR / f"{manifest['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(path) -> dict:
    """Read a manifest written by :func:`save_manifest`."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not a manifest: {exc}") from exc


def simulate_tampering(data: Dataset, *, n_modified: int = 3, n_removed: int = 2, n_added: int = 2,
                       rng=None) -> tuple:
    """A tampered copy of ``data`` for practice, and what was done to it.

    Modifies ``n_modified`` rows (one pixel inverted), deletes ``n_removed`` rows and appends
    ``n_added`` copies of existing images with new labels.

    Returns
    -------
    tampered : Dataset
    truth : dict
        ``modified`` and ``added`` as indices into ``tampered``, ``removed`` as indices into
        ``data`` (the convention of :class:`ProvenanceReport`).
    """
    from ..types import as_rng

    rng = as_rng(rng)
    n = len(data)
    removed = np.sort(rng.choice(n, n_removed, replace=False))
    keep = np.setdiff1d(np.arange(n), removed)
    modified_old = np.sort(rng.choice(keep, n_modified, replace=False))
    X, y = data.X.copy(), data.y.copy()
    X[modified_old, 0, 0, 0] = 1.0 - X[modified_old, 0, 0, 0]
    extra = rng.choice(keep, n_added, replace=False)
    X = np.concatenate([X[keep], X[extra]])
    y = np.concatenate([y[keep], (y[extra] + 1) % data.n_classes])
    new_index = {old: new for new, old in enumerate(keep)}
    truth = {"modified": [new_index[i] for i in modified_old.tolist()], "removed": removed.tolist(),
             "added": list(range(len(keep), len(keep) + n_added))}
    return data.replace(X=X, y=y), truth

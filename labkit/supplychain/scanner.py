"""A static scanner for model files that fails closed: pickles, containers and configs.

Nothing here imports, unpickles or instantiates what it reads, and nothing imports torch.
Every file is read in *every* format it is valid as, whatever its name or first bytes (a
polyglot can be a tar and a pickle, or YAML and a pickle, at once), and the findings of
all readings are reported together:

* as a pickle at every offset a loader starts from (:mod:`.pickle_machine`, a model of
  CPython's unpickler rather than of :mod:`pickletools`);
* as a zip, tar, ``.npy``, safetensors file or compressed stream (:mod:`.containers`),
  each member and each decompressed stream read once and read again in every format;
* as JSON, YAML (every document) or TOML text in any Unicode encoding the parsers
  accept, with OmegaConf interpolations (:mod:`.configs`);
* as one of today's model formats (:mod:`.formats`): Keras configs (``.keras``, HDF5),
  GGUF and Jinja chat templates, Hugging Face ``auto_map``, ONNX external data, skops
  schemas, TorchServe manifests, code members, 7-Zip (recognised, not read).

Fail closed: a stream that claims a format and breaks, a part the model cannot follow,
and anything beyond the :class:`~labkit.supplychain.findings.ScanBudget` is a finding,
never "clean"; bytes that no reading recognises (not even as text) are ``unverified``.
A file is clean only with no finding at all.

References
----------
* Python docs, ``pickle`` ("Warning: the pickle module is not secure").
* PyTorch docs, ``torch.load`` and ``weights_only``.
* NVD, CVE-2025-23304 (NVIDIA NeMo: code injection through model metadata).
* Hydra docs, "Instantiating objects with Hydra"; OmegaConf docs, "Resolvers".

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

from . import configs, containers, formats
from .blob import Blob
from .configs import find_targets
from .findings import BudgetExceeded, Context, Finding, ScanBudget, ScanReport
from .pickle_machine import run_pickle
from .rules import DEFAULT_ALLOW, pickle_findings

__all__ = [
    "DEFAULT_ALLOW",
    "Finding",
    "ScanReport",
    "ScanBudget",
    "scan_bytes",
    "scan_file",
    "scan_paths",
    "pickle_ops",
    "pickle_globals",
    "find_targets",
    "member_bytes",
    "sniff",
    "sniff_all",
]

_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, RuntimeError,
                MemoryError, OverflowError)


# --------------------------------------------------------------------------------------
# The pickle reading
# --------------------------------------------------------------------------------------


def _scan_pickle(ctx: Context, blob: Blob, member: str, depth: int, *,
                 offset: int = 0) -> set[str]:
    """Read ``blob`` as a pickle from ``offset``; returns torch storage keys."""
    last = member.rsplit("!", 1)[-1]
    run = run_pickle(blob, offset, max_line=ctx.budget.max_line,
                     persistent=containers.persistent_member(member))
    ctx.stats["pickle_ops"] += run.ops
    if not (run.pickles or run.events or run.protocol_header):
        return set()  # not a pickle: a loader would fail before doing anything
    ctx.fmt(member, "pickle")
    # a byte string inside a pickle that merely starts like one is data unless the outer
    # pickle unpickles it, which needs an import that is reported anyway
    nested_bytes = last.startswith("bytes@")
    for kind, detail, byte in pickle_findings(run, ctx.allow, offset=offset, nested=nested_bytes):
        ctx.add(member, kind, detail, offset=byte)
    for inner in run.nested:
        ctx.scan_blob(ctx, inner, f"{member}!bytes@{inner.start - blob.start}", depth + 1)
    return run.storage_keys


# --------------------------------------------------------------------------------------
# The dispatcher: every reading of one blob
# --------------------------------------------------------------------------------------


def _scan_blob(ctx: Context, blob: Blob, member: str, depth: int) -> set[str]:
    """Try every reading on one blob and return torch storage keys (from its pickle)."""
    if depth > ctx.budget.max_depth:
        ctx.add(member, "budget", "budget exceeded: containers nested too deeply")
        return set()
    ctx.stats["readings"] += 1
    before = len(ctx.findings)
    keys: set[str] = set()
    readings = [
        ("pickle", lambda: keys.update(_scan_pickle(ctx, blob, member, depth))),
        ("zip", lambda: containers.read_zip(ctx, blob, member, depth)),
        ("tar", lambda: containers.read_tar(ctx, blob, member, depth)),
        ("npy", lambda: containers.read_npy(ctx, blob, member, depth)),
        ("safetensors", lambda: containers.read_safetensors(ctx, blob, member, depth)),
        ("compressed", lambda: containers.read_compressed(ctx, blob, member, depth)),
        ("sqlite", lambda: containers.read_sqlite(ctx, blob, member, depth)),
        ("formats", lambda: formats.read_formats(ctx, blob, member, depth)),
        ("config", lambda: configs.read_text_configs(ctx, blob, member)),
    ]
    for _, read in readings:
        try:
            read()
        except BudgetExceeded as e:
            ctx.add(member, "budget", str(e))
            if ctx.produced > ctx.byte_budget:
                break
        except _READ_ERRORS as e:
            ctx.add(member, "unreadable-member", f"{type(e).__name__}: {e}")
    if not ctx.has_format(member):
        if blob.size == 0:
            ctx.fmt(member, "empty")
        else:
            ctx.fmt(member, "data")
        # (a reading that stopped on a budget or a broken member has already said so)
        if blob.size and not any(f.member == member for f in ctx.findings[before:]):
            ctx.add(member, "unverified", f"{blob.size} bytes in no format the scanner reads "
                    "(not a pickle, archive, array, config, text or known model format): "
                    "not vouched for")
    return keys


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def _context(path: str, allow: Iterable[str] | None, budget: ScanBudget | None,
             size: int) -> Context:
    extra = frozenset(allow or ())
    budget = budget or ScanBudget()
    ctx = Context(path, DEFAULT_ALLOW | extra, extra, budget, budget.bytes_for(size))
    ctx.scan_blob = _scan_blob
    ctx.scan_pickle = lambda c, b, m, d, offset=0: _scan_pickle(c, b, m, d, offset=offset)
    return ctx


def _report(ctx: Context) -> ScanReport:
    return ScanReport(ctx.path, tuple(ctx.findings), tuple(ctx.formats))


def scan_bytes(data: bytes, *, name: str = "<bytes>", allow: Iterable[str] | None = None,
               budget: ScanBudget | None = None) -> ScanReport:
    """Scan in-memory data; see :func:`scan_file`.

    Parameters
    ----------
    data : bytes
    name : str
        Shown as the path in findings.
    allow : iterable of str, optional
        Extra exact names accepted as pickle globals, ``_target_`` values and OmegaConf
        resolvers (no prefixes, no wildcards).
    budget : ScanBudget, optional

    Returns
    -------
    ScanReport
    """
    data = bytes(data)
    ctx = _context(name, allow, budget, len(data))
    try:
        _scan_blob(ctx, Blob(data), "", 0)
    finally:
        ctx.close()
    return _report(ctx)


def scan_file(path: str | os.PathLike, *, allow: Iterable[str] | None = None,
              budget: ScanBudget | None = None, stats: dict | None = None) -> ScanReport:
    """Scan one file without executing, importing or unpickling anything in it.

    The file is memory-mapped; stored archive members are windows of it, and each
    compressed member is decompressed once, so the work is linear in the bytes read.

    Parameters
    ----------
    path : str or path-like
    allow : iterable of str, optional
        Extra exact names accepted as pickle globals, ``_target_`` values and OmegaConf
        resolvers. :data:`DEFAULT_ALLOW` always applies to pickles; no ``_target_`` is
        allowed unless listed here.
    budget : ScanBudget, optional
        Size/depth bounds (exceeding one is a ``budget`` finding).
    stats : dict, optional
        Filled with work counters (``decompressed`` bytes, ``members``, ``pickle_ops``,
        ``readings``), for benchmarks and tests.

    Returns
    -------
    ScanReport
        ``verdict`` is ``"clean"``, ``"flagged"``, ``"unverified"`` (the only findings
        say that part of the file is in no format the scanner reads) or ``"unreadable"``.

    Examples
    --------
    >>> import tempfile, pickle, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
    >>> _ = p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    >>> scan_file(p).verdict
    'clean'

    See Also
    --------
    notebooks/06_supply_chain.ipynb
    """
    p = str(path)
    try:
        st = os.stat(p)
    except OSError as e:
        return unreadable(p, f"{type(e).__name__}: {e.strerror or e}")
    if not stat.S_ISREG(st.st_mode):   # a FIFO blocks on open, /dev/zero never ends
        return unreadable(p, f"{_kind_of(st.st_mode)}, not a regular file: not opened")
    ctx = _context(p, allow, budget, st.st_size)
    try:
        try:
            blob = Blob.of_file(p, ctx)
        except (OSError, ValueError) as e:
            ctx.add("", "unreadable", f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}")
            return _report(ctx)
        _scan_blob(ctx, blob, "", 0)
    finally:
        ctx.close()
        if stats is not None:
            stats.update(ctx.stats, produced=ctx.produced)
    return _report(ctx)


def unreadable(path: str, why: str) -> ScanReport:
    """The report for a path the scanner did not read: verdict ``unreadable``, ``why``."""
    return ScanReport(str(path), (Finding(str(path), "", "unreadable", why),))


def _kind_of(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a special file")


def _walk_paths(paths: Iterable[str | os.PathLike]) -> Iterator[str | ScanReport]:
    """Every file under ``paths`` in sorted order; a folder that cannot be listed comes
    back as its ``unreadable`` report (skipping it silently would call its files clean)."""
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            errors: list[OSError] = []
            for root, dirs, files in os.walk(p, onerror=errors.append):
                while errors:
                    e = errors.pop(0)
                    yield unreadable(e.filename or root, f"folder not listed: {e.strerror or e}")
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
            for e in errors:
                yield unreadable(e.filename or p, f"folder not listed: {e.strerror or e}")
        else:
            yield p


def scan_paths(paths: Iterable[str | os.PathLike], *, allow: Iterable[str] | None = None,
               budget: ScanBudget | None = None) -> list[ScanReport]:
    """Scan files and every file under folders, in sorted order.

    Returns
    -------
    list of ScanReport
        One per file.
    """
    allow = tuple(allow or ())
    return [p if isinstance(p, ScanReport) else scan_file(p, allow=allow, budget=budget)
            for p in _walk_paths(paths)]


# --------------------------------------------------------------------------------------
# Disassembly views and helpers
# --------------------------------------------------------------------------------------


def pickle_ops(data: bytes, *, limit: int = 200) -> list[tuple[int, str, object]]:
    """The opcodes of the pickles in ``data``: ``(byte, opcode name, argument)``.

    A disassembly (like :func:`pickletools.dis`, but as the unpickler reads it: "a model
    file is a program"); nothing is executed.

    Parameters
    ----------
    data : bytes
        A pickle (for a torch checkpoint, its ``data.pkl`` member).
    limit : int
        Stop after this many opcodes.
    """
    return run_pickle(Blob(bytes(data)), trace=True, limit=limit, persistent=True).trace


def pickle_globals(data: bytes) -> list[str]:
    """Every name the pickles in ``data`` would import, in order (statically).

    Examples
    --------
    >>> import pickle, collections
    >>> pickle_globals(pickle.dumps(collections.OrderedDict()))
    ['collections.OrderedDict']
    """
    return [name for name, _ in run_pickle(Blob(bytes(data)), persistent=True).imports]


def member_bytes(path: str | os.PathLike, suffix: str = "data.pkl") -> bytes:
    """The first zip member of ``path`` whose name ends with ``suffix`` (default: a torch
    checkpoint's pickle), for :func:`pickle_ops`."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(suffix):
                return zf.read(name)
    raise KeyError(f"no member ending with {suffix!r} in {Path(path).name}")


def sniff(head: bytes) -> str:
    """The first format :func:`sniff_all` names (``"data"`` when none)."""
    return sniff_all(head)[0]


def sniff_all(head: bytes) -> list[str]:
    """The formats whose first bytes ``head`` has (a polyglot has several).

    Returns a subset of ``zip``, ``gzip``, ``bz2``, ``xz``, ``lzma``, ``lz4``, ``tar``,
    ``npy``, ``pickle`` (protocol 2+ header), ``safetensors``, ``gguf``, ``hdf5``, ``7z``,
    ``text``; ``["data"]`` when none. The scanner itself does not rely on this: it tries
    every reading.
    """
    out = []
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        out.append("zip")
    for name, magic in containers.COMPRESSION_MAGIC.items():
        if name != "zf" and head.startswith(magic):
            out.append(name)
    if containers._tar_header_ok(head[:512]):
        out.append("tar")
    if head[:6] == b"\x93NUMPY":
        out.append("npy")
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        out.append("pickle")
    if len(head) >= 10 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2:
        out.append("safetensors")
    for name, magic in (("gguf", formats.GGUF_MAGIC), ("hdf5", formats.HDF5_MAGIC),
                        ("7z", formats.SEVENZIP_MAGIC)):
        if head.startswith(magic):
            out.append(name)
    if configs._encodings(head[:4096]) and any(
            configs._textlike(head[:4096], e) for e in configs._encodings(head[:4096])):
        out.append("text")
    return out or ["data"]

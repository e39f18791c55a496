"""Readings of a blob as a container, each as its loader reads it: zip (``zipfile`` finds
the end-of-central-directory record, so prefixes are fine), tar (a valid header block, with
or without the ``ustar`` magic), ``.npy`` (numpy's own header parser), safetensors (a
header of any size up to the budget) and every compression wrapper joblib accepts
(gzip, bz2, xz, lzma, zlib, lz4 when installed, joblib's old ``ZF`` files).

Each reading returns quietly when the blob is not in its format, and adds a finding when
the blob claims the format (its magic) but cannot be read. Members and decompressed data
go back to the dispatcher (``ctx.scan_blob``), which tries every reading again.

References
----------
* PKWARE APPNOTE (zip); POSIX ustar / GNU tar headers; numpy NEP 1 (``.npy`` format).
* safetensors format: 8-byte little-endian header length, JSON header, raw bytes.
* joblib ``numpy_pickle_utils`` (compressor prefixes).

See Also
--------
labkit.supplychain.scanner
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib

from .blob import Blob, materialize
from .findings import BudgetExceeded, Context

__all__ = ["read_zip", "read_tar", "read_npy", "read_safetensors", "read_compressed",
           "read_sqlite", "npy_header", "persistent_member", "COMPRESSION_MAGIC"]

_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
               RuntimeError, zlib.error, lzma.LZMAError, struct.error, KeyError)

COMPRESSION_MAGIC: dict[str, bytes] = {
    "gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00", "lzma": b"\x5d\x00\x00",
    "lz4": b"\x04\x22\x4d\x18", "zstd": b"\x28\xb5\x2f\xfd", "zf": b"ZF",
}
"""Magic bytes of the compression wrappers (zlib is recognised by its header check)."""


# --------------------------------------------------------------------------------------
# zip
# --------------------------------------------------------------------------------------


def _looks_zip(blob: Blob) -> tuple[bool, bool]:
    """(claims to be a zip by its first bytes, has an end-of-central-directory record)."""
    head = blob.head(4)
    claims = head in (b"PK\x03\x04", b"PK\x05\x06")
    return claims, claims or b"PK\x05\x06" in blob.tail(65536 + 22)


def read_zip(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    claims, maybe = _looks_zip(blob)
    if not maybe:
        return
    try:
        zf = zipfile.ZipFile(blob.open())
        infos = zf.infolist()
    except _ZIP_ERRORS as e:
        if claims:
            ctx.add(member, "unreadable-member", f"broken zip: {e}")
        return
    ctx.fmt(member, "zip")
    if claims:  # a zip found inside other data (a tar ending with a zip) is data to them
        _zip_consistency(ctx, blob, zf, infos, member)
    # torch checkpoints: data.pkl names its raw storage members (torch never unpickles
    # those), so pickles are read first and storages only CRC-checked. torch's reader
    # (miniz) looks names up case-insensitively: archive/DATA.PKL is its data.pkl.
    pkls = [i for i in infos if persistent_member(i.filename)]
    pkl_dirs = {i.filename[: -len("data.pkl")] for i in pkls}
    order = pkls + [i for i in infos if i not in pkls]
    storages: set[str] = set()
    for info in order:
        name = f"{member}!{info.filename}" if member else info.filename
        _check_member_path(ctx, name, info.filename)
        if info.is_dir() and info.file_size == 0:
            continue
        ctx.stats["members"] += 1
        prefix, _, key = info.filename.rpartition("data/")
        is_storage = key in storages and prefix in pkl_dirs
        try:
            sub = _zip_member(ctx, zf, blob, info, keep=not is_storage)
        except BudgetExceeded as e:
            ctx.add(name, "budget", str(e))
            return
        except _ZIP_ERRORS as e:
            ctx.add(name, "unreadable-member", f"{type(e).__name__}: {e}")
            continue
        if is_storage:
            ctx.fmt(name, "storage")
            continue
        keys = ctx.scan_blob(ctx, sub, name, depth + 1)
        if info in pkls and keys:
            storages |= keys


def persistent_member(name: str) -> bool:
    """Is archive member ``name`` read by a loader with a ``persistent_load``? torch's
    zip reader finds ``<folder>/data.pkl`` in any letter case (miniz compares names
    case-insensitively); its legacy tar reader unpickles the member ``pickle``."""
    last = name.rsplit("!", 1)[-1]
    return last.lower().endswith("data.pkl") or last == "pickle"


_EOCD64_LOC = b"PK\x06\x07"


def _zip_consistency(ctx: Context, blob: Blob, zf: zipfile.ZipFile, infos: list,
                     member: str) -> None:
    """Flag a zip that two readers read differently (the loaders do not agree with
    :mod:`zipfile`): bytes before the archive that ``zipfile`` skips by shifting every
    offset (torch's miniz reader and others take offsets as written), a zip64 end record
    that says something else than the classic one, duplicate member names (one reader
    takes the first, another the last), and local file headers that no central-directory
    entry points at (a member a streaming reader sees and ``zipfile`` does not:
    concatenated archives)."""
    f = blob.open()
    endrec = zipfile._EndRecData(f)
    if endrec is None:  # pragma: no cover - zipfile opened it
        return
    concat = endrec[zipfile._ECD_LOCATION] - endrec[zipfile._ECD_SIZE] - endrec[zipfile._ECD_OFFSET]
    if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # as zipfile does
        concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    problems = []
    if concat > 0:
        problems.append(f"{concat} bytes before the archive: zipfile shifts every offset, "
                        "readers that take offsets as written (torch.load's) read other bytes")
    eocd = endrec[zipfile._ECD_LOCATION]
    classic = blob.read(eocd, 22)
    if eocd >= 20 and blob.read(eocd - 20, 4) == _EOCD64_LOC and len(classic) == 22:
        entries, cd_size, cd_offset = struct.unpack("<HII", classic[10:20])
        z64 = (endrec[zipfile._ECD_ENTRIES_TOTAL], endrec[zipfile._ECD_SIZE],
               endrec[zipfile._ECD_OFFSET])
        for value, sentinel, other, what in ((entries, 0xFFFF, z64[0], "entry count"),
                                             (cd_size, 0xFFFFFFFF, z64[1], "directory size"),
                                             (cd_offset, 0xFFFFFFFF, z64[2], "directory offset")):
            if value != sentinel and value != other:
                problems.append(f"the zip64 end record's {what} ({other}) differs from the "
                                f"classic end record's ({value})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        seen, dup = set(), []
        for n in names:
            if n in seen and n not in dup:
                dup.append(n)
            seen.add(n)
        problems.append("duplicate member names (one reader takes the first, another the "
                        f"last): {', '.join(map(repr, dup[:3]))}")
    # local headers outside every member's span: scan the gaps only (linear, and never
    # the stored data itself, where the signature may occur by chance)
    spans = []
    for i in infos:
        local = blob.read(i.header_offset, 30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            continue
        n, m = struct.unpack("<HH", local[26:30])
        spans.append((i.header_offset, i.header_offset + 30 + n + m + i.compress_size))
    spans.sort()
    cd_start = zf.start_dir if hasattr(zf, "start_dir") else eocd
    pos, stray = 0, None
    for a, b in spans + [(cd_start, cd_start)]:
        if a > pos:
            hit = blob.buf.find(b"PK\x03\x04", blob.start + pos, blob.start + min(a, blob.size))
            if hit >= 0:
                stray = hit - blob.start
                break
        pos = max(pos, b)
    if stray is not None:
        problems.append(f"a local file header at byte {stray} that no central-directory "
                        "entry points at (a streaming reader sees a member zipfile does not)")
    for p in problems:
        ctx.add(member, "ambiguous-container", p)


def _check_member_path(ctx: Context, name: str, path: str) -> None:
    """A member path that leaves the extraction folder (absolute, ``..``, a drive):
    ``tarfile.extractall`` without a filter (Python < 3.14's default, NeMo's ``.nemo``
    restore) writes outside it (CVE-2007-4559; tar-slip)."""
    p = path.replace("\\", "/")
    parts = p.split("/")
    if p.startswith("/") or ".." in parts or (len(p) > 1 and p[1] == ":"):
        ctx.add(name, "path-escape", f"member path {path!r} leaves the extraction folder")


def _zip_member(ctx: Context, zf: zipfile.ZipFile, blob: Blob, info: zipfile.ZipInfo,
                *, keep: bool) -> Blob | None:
    """Read one member once (zipfile checks its CRC); a stored member becomes a window
    of the blob, a compressed one is decompressed once into a new blob."""
    stored = info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1
    with zf.open(info) as f:
        if stored or not keep:
            while f.read(1 << 20):
                pass
            if not keep:
                return None
            local = blob.read(info.header_offset, 30)
            if local[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile("bad local file header")
            n, m = struct.unpack("<HH", local[26:30])
            return blob.sub(info.header_offset + 30 + n + m, info.file_size)
        return materialize(f, ctx)


# --------------------------------------------------------------------------------------
# tar
# --------------------------------------------------------------------------------------


def _tar_header_ok(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def read_tar(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """Every regular member, including those after an end-of-archive block
    (``ignore_zeros``, as GNU ``tar -i`` reads them)."""
    if not _tar_header_ok(blob.head(512)):
        return
    try:
        tf = tarfile.open(fileobj=blob.open(), mode="r:", ignore_zeros=True)
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        ctx.add(member, "unreadable-member", f"broken tar: {e}")
        return
    ctx.fmt(member, "tar")
    legacy = None
    try:
        for m in tf:
            name = f"{member}!{m.name}" if member else m.name
            _check_member_path(ctx, name, m.name)
            if m.isdir():
                continue
            ctx.stats["members"] += 1
            if not m.isfile():
                ctx.add(name, "unreadable-member", "link or special file in a model archive")
                continue
            if m.offset_data + m.size > blob.size:
                ctx.add(name, "unreadable-member", "truncated member")
                continue
            if m.issparse():
                sub = materialize(tf.extractfile(m), ctx)
            else:
                sub = blob.sub(m.offset_data, m.size)
            if m.name in _LEGACY_STREAMS:
                if legacy is None:
                    legacy = {x.name for x in tf.getmembers()} >= _LEGACY_TAR
                if legacy:  # raw storage bytes between pickles: read as torch reads them
                    _legacy_tar_stream(ctx, sub, name, m.name)
                    continue
            ctx.scan_blob(ctx, sub, name, depth + 1)
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        ctx.add(member, "unreadable-member", f"broken tar: {e}")


_LEGACY_STREAMS = ("storages", "tensors")
_LEGACY_TAR = {"storages", "tensors", "pickle"}
_ELEMENT_SIZE = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4,
                 "Short": 2, "Char": 1, "Byte": 1, "Bool": 1, "ComplexFloat": 8,
                 "ComplexDouble": 16, "QInt8": 1, "QUInt8": 1, "QInt32": 4, "QUInt4x2": 1,
                 "QUInt2x4": 1}


def _legacy_tar_stream(ctx: Context, blob: Blob, member: str, kind: str) -> None:
    """torch's oldest format (a tar of ``sys_info``, ``pickle``, ``storages``,
    ``tensors``; ``torch.serialization.legacy_load``): ``storages`` is a pickle (a count),
    then per storage a pickle ``(key, location, storage_type)`` and raw bytes (an int64
    element count and the elements), then a pickle of views; ``tensors`` is a count, then
    per tensor two pickles and raw shape data. Every pickle is read where torch reads
    it; a stream that cannot be followed to its end is a finding."""
    from .pickle_machine import run_pickle
    from .rules import pickle_findings

    pos = 0

    def pickle_at() -> object:
        nonlocal pos
        run = run_pickle(blob, pos, follow=False, max_line=ctx.budget.max_line)
        ctx.stats["pickle_ops"] += run.ops
        for k, detail, byte in pickle_findings(run, ctx.allow, offset=0):
            ctx.add(member, k, detail, offset=byte)
        if run.error is not None:
            raise ValueError(f"{run.error} (byte {run.error_at})")
        pos = run.end
        return run.result

    def raw(n: int) -> bytes:
        nonlocal pos
        if n < 0 or pos + n > blob.size:
            raise ValueError(f"truncated raw data at byte {pos}")
        data = blob.read(pos, n)
        pos += n
        return data

    ctx.fmt(member, "torch-legacy-tar")
    try:
        count = pickle_at()
        if type(count) is not int or count < 0:
            raise ValueError("the count is not an int")
        for _ in range(count):
            if kind == "storages":
                args = pickle_at()
                stype = args[2].name if isinstance(args, tuple) and len(args) == 3 and \
                    hasattr(args[2], "name") else ""
                size = _ELEMENT_SIZE.get(stype.rsplit(".", 1)[-1][:-len("Storage")])
                if size is None:
                    raise ValueError(f"storage type {stype or '?'} unknown to the scanner")
                (n,) = struct.unpack("<q", raw(8))
                raw(n * size)
            else:
                pickle_at()
                pickle_at()
                (ndim,) = struct.unpack("<i", raw(4))
                raw(4 + 16 * ndim + 8)
        if kind == "storages":
            pickle_at()  # storage views
        if pos != blob.size:
            raise ValueError(f"{blob.size - pos} bytes after the last record")
    except (ValueError, struct.error) as e:
        ctx.add(member, "malformed-pickle", f"torch legacy {kind} record not read to the "
                f"end: {e}")


# --------------------------------------------------------------------------------------
# npy
# --------------------------------------------------------------------------------------


def npy_header(blob: Blob, max_header: int):
    """``(dtype, data_offset)`` of an ``.npy`` blob, parsed by numpy's own reader
    (``numpy.lib.format``: ``read_magic`` and the header reader ``numpy.load`` uses;
    nothing is unpickled). Raises ``ValueError`` when numpy would refuse the header."""
    from numpy.lib import format as npf

    f = blob.open()
    version = npf.read_magic(f)
    if version == (1, 0):
        _, _, dtype = npf.read_array_header_1_0(f, max_header_size=max_header)
    elif version == (2, 0):
        _, _, dtype = npf.read_array_header_2_0(f, max_header_size=max_header)
    else:
        from numpy.lib import _format_impl

        _, _, dtype = _format_impl._read_array_header(f, version, max_header_size=max_header)
    return dtype, f.tell()


def read_npy(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """Object dtypes in any spelling (``'O'``, ``'|O'``, ``'object'``, a structured or
    sub-array dtype with an object field) mean a pickle follows the header."""
    if blob.head(6) != b"\x93NUMPY":
        return
    ctx.fmt(member, "npy")
    try:
        dtype, start = npy_header(blob, ctx.budget.max_header)
    except ImportError:  # pragma: no cover - numpy is a lab requirement
        ctx.add(member, "unmodelled", "numpy is not installed: .npy header not parsed")
        return
    except Exception as e:  # noqa: BLE001 - numpy raises several types for bad headers
        ctx.add(member, "malformed", f".npy header numpy cannot parse: {type(e).__name__}")
        return
    if dtype.hasobject:
        ctx.scan_pickle(ctx, blob, member + "<object-array>", depth, offset=start)


# --------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------


def read_safetensors(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """The JSON header (any size up to the budget; the safetensors library itself stops
    at 100 MB, other readers do not) and the ``_target_`` configs in ``__metadata__``."""
    if blob.size < 10:
        return
    (n,) = struct.unpack("<Q", blob.head(8))
    first = blob.read(8, min(n, 1 << 20)).lstrip(b" \t\r\n")[:1]
    if n < 2 or 8 + n > blob.size or first not in (b"{", b""):
        return  # json.loads and serde_json skip leading whitespace: so does this reading
    if n > ctx.budget.max_header:
        ctx.fmt(member, "safetensors")
        ctx.add(member, "budget", f"budget exceeded: safetensors header of {n} bytes")
        return
    raw = bytearray()
    f = blob.open()
    f.seek(8)
    while len(raw) < n:  # streamed in chunks; bounded by max_header
        chunk = f.read(min(1 << 22, n - len(raw)))
        if not chunk:
            break
        raw += chunk
    from .configs import json_pairs, scan_parsed

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=json_pairs)
    except (ValueError, RecursionError):
        return
    if not isinstance(header, dict):
        return
    ctx.fmt(member, "safetensors")
    meta = header.get("__metadata__", {})
    if meta is not None and not isinstance(meta, dict):
        ctx.add(member, "malformed", "__metadata__ is not a mapping", offset=8)
    scan_parsed(ctx, member, header)


# --------------------------------------------------------------------------------------
# compression wrappers
# --------------------------------------------------------------------------------------


class _ZlibReader(io.RawIOBase):
    """A raw stream that inflates a zlib stream (what joblib's ``zlib`` compressor writes)."""

    def __init__(self, f, wbits: int = 15):
        self.f, self.d, self.done = f, zlib.decompressobj(wbits), False
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.pending and not self.done:
            chunk = self.f.read(1 << 20)
            if not chunk:
                self.pending = self.d.flush()
                self.done = True
                if not self.d.eof:
                    raise zlib.error("truncated zlib stream")
                break
            self.pending = self.d.decompress(chunk)
            if self.d.eof:
                self.done = True
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def _zlib_header_ok(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and \
        (head[0] * 256 + head[1]) % 31 == 0


def _wrappers(blob: Blob) -> list[tuple[str, bool, object]]:
    """(name, strong magic?, opener) for every wrapper the first bytes allow."""
    head = blob.head(32)
    out = []
    if head.startswith(COMPRESSION_MAGIC["gzip"]):
        out.append(("gzip", True, lambda: gzip.GzipFile(fileobj=blob.open(), mode="rb")))
    if head.startswith(COMPRESSION_MAGIC["bz2"]):
        out.append(("bz2", True, lambda: bz2.BZ2File(blob.open(), mode="rb")))
    if head.startswith(COMPRESSION_MAGIC["xz"]):
        out.append(("xz", True, lambda: lzma.LZMAFile(blob.open(), format=lzma.FORMAT_XZ)))
    if head.startswith(COMPRESSION_MAGIC["lzma"]):
        out.append(("lzma", False,
                    lambda: lzma.LZMAFile(blob.open(), format=lzma.FORMAT_ALONE)))
    if _zlib_header_ok(head):
        out.append(("zlib", False, lambda: io.BufferedReader(_ZlibReader(blob.open()))))
    if head.startswith(COMPRESSION_MAGIC["lz4"]):
        out.append(("lz4", True, lambda: _lz4(blob)))
    if head.startswith(COMPRESSION_MAGIC["zstd"]):
        out.append(("zstd", True, lambda: _zstd(blob)))
    if head.startswith(COMPRESSION_MAGIC["zf"]):
        for skip in range(3, 24):  # "ZF" + hex length (+ a space), then a zlib stream
            if _zlib_header_ok(head[skip:skip + 2]):
                out.append(("joblib-zf", False, lambda s=skip: io.BufferedReader(
                    _ZlibReader(_skipped(blob.open(), s)))))
                break
    return out


def _skipped(f, n: int):
    f.seek(n)
    return f


def _lz4(blob: Blob):
    try:
        import lz4.frame
    except ImportError:
        raise NotImplementedError("lz4 frame: the lz4 package is not installed, so the "
                                  "content cannot be checked") from None
    return lz4.frame.LZ4FrameFile(blob.open(), mode="rb")


def _zstd(blob: Blob):
    """A zstd frame (``joblib.dump(..., compress="zstd")``-style wrappers, model caches).
    Without a zstd reader the content cannot be checked: a finding, never clean."""
    try:
        from compression import zstd  # Python 3.14+

        return zstd.ZstdFile(blob.open(), mode="rb")
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        raise NotImplementedError("zstd frame: neither compression.zstd (Python 3.14) nor "
                                  "the zstandard package is installed, so the content "
                                  "cannot be checked") from None
    return zstandard.ZstdDecompressor().stream_reader(blob.open(), read_across_frames=True)


def read_compressed(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """Decompress once and scan what comes out. A stream that breaks part-way is still
    scanned as far as it goes (joblib unpickles while it decompresses), and with a
    strong magic the break itself is a finding."""
    for kind, strong, opener in _wrappers(blob):
        inner_name = f"{member}<{kind}>"
        error = None
        stream = None
        sink = _Collect(ctx)
        try:
            stream = opener()
            sink.drain(stream)
        except BudgetExceeded:
            raise
        except NotImplementedError as e:
            ctx.add(member, "unreadable-member", str(e))
            continue
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, struct.error) as e:
            error = e
        finally:
            if stream is not None:
                try:
                    stream.close()
                except (OSError, ValueError, EOFError, lzma.LZMAError, zlib.error):
                    pass
        inner = sink.blob()
        if error is not None and not strong and inner.size == 0:
            continue  # two bytes that happen to pass a zlib check: not a wrapper
        ctx.fmt(member, kind)
        if error is not None:
            ctx.add(member, "unreadable-member", f"broken {kind} stream: {error}")
        if inner.size:
            ctx.scan_blob(ctx, inner, inner_name, depth + 1)


class _Collect:
    """Keeps what a decompressor produced even when it fails part-way."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.parts: list[bytes] = []
        self.result: Blob | None = None

    def drain(self, stream) -> None:
        self.result = materialize(_Tee(stream, self.parts), self.ctx)

    def blob(self) -> Blob:
        if self.result is not None:
            return self.result
        return Blob(b"".join(self.parts))


class _Tee:
    def __init__(self, stream, parts: list):
        self.stream, self.parts, self.kept = stream, parts, 0

    def read(self, n: int) -> bytes:
        chunk = self.stream.read(n)
        if chunk and self.kept < (64 << 20):  # partial output kept for a failed stream
            self.parts.append(chunk)
            self.kept += len(chunk)
        return chunk


# --------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------

_SQLITE_MAGIC = b"SQLite format 3\x00"


def read_sqlite(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """A SQLite database (a cache such as ``diskcache`` or ``sqlitedict`` keeps pickled
    values in its rows): every BLOB cell of every table goes back to the dispatcher (a
    pickle there is unpickled by the cache's ``get``). Read with the standard library's
    ``sqlite3`` from an in-memory copy, tables only (no views or triggers run), with
    untrusted-schema functions off."""
    if blob.head(16) != _SQLITE_MAGIC:
        return
    import sqlite3

    ctx.fmt(member, "sqlite")
    ctx.charge(blob.size)
    con = sqlite3.connect(":memory:")
    try:
        con.execute("PRAGMA trusted_schema = OFF")
        con.deserialize(blob.read(0, blob.size))
        con.execute("PRAGMA query_only = ON")
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            cur = con.execute(f"SELECT * FROM {quoted}")
            cols = [d[0] for d in cur.description]
            for row_no, row in enumerate(cur):
                for col, cell in zip(cols, row):
                    if isinstance(cell, bytes) and len(cell) >= 2:
                        ctx.stats["members"] += 1
                        ctx.scan_blob(ctx, Blob(cell), f"{member}!{table}[{row_no}].{col}",
                                      depth + 1)
    except sqlite3.Error as e:
        ctx.add(member, "unreadable-member", f"SQLite database not read to the end: {e}")
    finally:
        con.close()

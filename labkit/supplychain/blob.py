"""Random-access views of the bytes being scanned: a file (memory-mapped), a window of
one (a stored archive member), or bytes decompressed once and kept (in memory, or in a
temp file when large).

Every reading of a blob (pickle, zip, tar, npy, ...) reads the same bytes; nothing is ever
decompressed twice, which keeps the scanner's work linear in what it reads.

See Also
--------
labkit.supplychain.scanner
"""

from __future__ import annotations

import io
import mmap
import os
import tempfile

from .findings import Context

__all__ = ["Blob", "materialize"]

_SPILL = 64 << 20  # decompressed data above this goes to a temp file
_CHUNK = 1 << 20


class _WindowRaw(io.RawIOBase):
    """A seekable raw stream over ``buf[start:start + size]`` (bytes or mmap)."""

    def __init__(self, buf, start: int, size: int):
        self.buf, self.start, self.size, self.pos = buf, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self.size - self.pos))
        if n:
            a = self.start + self.pos
            b[:n] = self.buf[a:a + n]
            self.pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos


class Blob:
    """``size`` bytes at ``start`` of ``buf`` (``bytes`` or an ``mmap``).

    ``open()`` gives a fresh seekable file object (for ``zipfile``/``tarfile``);
    ``buf``/``start``/``size`` give zero-copy random access (for the pickle machine).
    """

    __slots__ = ("buf", "start", "size")

    def __init__(self, buf, start: int = 0, size: int | None = None):
        self.buf = buf
        self.start = start
        self.size = len(buf) - start if size is None else size

    def open(self) -> io.BufferedReader:
        return io.BufferedReader(_WindowRaw(self.buf, self.start, self.size), _CHUNK)

    def head(self, n: int) -> bytes:
        return bytes(self.buf[self.start:self.start + min(n, self.size)])

    def tail(self, n: int) -> bytes:
        n = min(n, self.size)
        end = self.start + self.size
        return bytes(self.buf[end - n:end])

    def read(self, offset: int, n: int) -> bytes:
        a = self.start + max(0, offset)
        return bytes(self.buf[a:min(a + n, self.start + self.size)])

    def sub(self, offset: int, n: int) -> "Blob":
        offset = max(0, min(offset, self.size))
        return Blob(self.buf, self.start + offset, max(0, min(n, self.size - offset)))

    @classmethod
    def of_file(cls, path: str, ctx: Context) -> "Blob":
        f = open(path, "rb")
        ctx.closers.append(f)
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return cls(b"")
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        ctx.closers.append(m)
        return cls(m, 0, size)


def materialize(stream, ctx: Context, *, expect: int | None = None) -> Blob:
    """Read a stream (a decompressor, an archive member) to the end, once, into a blob.

    Every byte counts against the context's budget (a decompression bomb stops with
    :class:`~labkit.supplychain.findings.BudgetExceeded`). Data over 64 MiB is kept in a
    temp file that is deleted when the scan ends.
    """
    mem = io.BytesIO()
    spill = None
    n = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        n += len(chunk)
        ctx.stats["decompressed"] += len(chunk)
        ctx.charge(len(chunk))
        if spill is None and n > _SPILL:
            spill = tempfile.TemporaryFile(prefix="labkit-scan-")
            ctx.closers.append(spill)
            spill.write(mem.getbuffer())
            mem = None
        (spill if spill is not None else mem).write(chunk)
    if spill is None:
        return Blob(mem.getvalue())
    spill.flush()
    m = mmap.mmap(spill.fileno(), 0, access=mmap.ACCESS_READ)
    ctx.closers.append(m)
    return Blob(m, 0, n)


"""A static scanner for model files: pickle opcodes and ``_target_`` metadata.

Nothing here imports, unpickles or instantiates what it reads. Formats are recognised by
content (magic bytes and structure), never by file name or extension, and every member of
every zip or tar archive is read.

Two checks:

* a pickle opcode walker built on the opcode table of the standard library's
  :mod:`pickletools`. It models the unpickler's stack and memo, so a module or name that
  reaches ``STACK_GLOBAL`` through ``PUT``/``GET``/``MEMOIZE``/``DUP`` or after decoy
  pushes and ``POP`` is still resolved. Every import outside an allow-list is a finding;
  so are malformed streams, bytes after ``STOP`` and unreadable archive members (fail
  closed).
* a ``_target_`` finder for YAML, JSON, safetensors ``__metadata__`` (including strings
  that parse as JSON, YAML or Python literals) and ``.nemo``-style tars, because libraries
  that hand such metadata to ``hydra.utils.instantiate`` run whatever callable it names
  (NVIDIA NeMo, CVE-2025-23304).

References
----------
* Python docs, ``pickle`` ("Warning: the pickle module is not secure") and ``pickletools``.
* PyTorch docs, ``torch.load`` and ``weights_only``; the default allow-list below is what
  ``torch.load(weights_only=True)`` accepts in torch 2.14, plus numpy's array pickles.
* safetensors format: 8-byte little-endian header length, JSON header, raw tensor bytes.
* Hydra docs, "Instantiating objects with Hydra" (``_target_``, ``_partial_``).

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import _compat_pickle
import ast
import bz2
import functools
import gzip
import io
import json
import lzma
import os
import pickletools
import re
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

import yaml

__all__ = [
    "DEFAULT_ALLOW",
    "Finding",
    "ScanReport",
    "scan_bytes",
    "scan_file",
    "scan_paths",
    "pickle_ops",
    "pickle_globals",
    "find_targets",
    "sniff",
]

# --------------------------------------------------------------------------------------
# The default allow-list: what torch.load(weights_only=True) accepts, plus numpy arrays.
# --------------------------------------------------------------------------------------

_TORCH_TENSOR_TYPES = ("BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half",
                       "Int", "Long", "Short")
_TORCH_DTYPES = (
    "bcomplex32 bfloat16 bits16 bits1x8 bits2x4 bits4x2 bits8 bool complex128 complex32 "
    "complex64 float16 float32 float64 float4_e2m1fn_x2 float8_e4m3fn float8_e4m3fnuz "
    "float8_e5m2 float8_e5m2fnuz float8_e8m0fnu int1 int16 int2 int3 int32 int4 int5 int6 "
    "int64 int7 int8 qint32 qint8 quint2x4 quint4x2 quint8 uint1 uint16 uint2 uint3 uint32 "
    "uint4 uint5 uint6 uint64 uint7 uint8"
).split()
_TORCH_MISC = (
    "_codecs.encode builtins.bytearray builtins.complex builtins.set collections.Counter "
    "collections.OrderedDict torch.Size torch.Tensor torch.device "
    "torch.nn.parameter.Parameter torch.serialization._get_layout "
    "torch.storage.TypedStorage torch.storage.UntypedStorage "
    "torch._tensor._rebuild_from_type_v2 torch._utils._rebuild_device_tensor_from_cpu_tensor "
    "torch._utils._rebuild_device_tensor_from_numpy torch._utils._rebuild_meta_tensor_no_storage "
    "torch._utils._rebuild_nested_tensor torch._utils._rebuild_parameter "
    "torch._utils._rebuild_parameter_with_state torch._utils._rebuild_qtensor "
    "torch._utils._rebuild_sparse_tensor torch._utils._rebuild_tensor "
    "torch._utils._rebuild_tensor_v2 torch._utils._rebuild_tensor_v3 "
    "torch._utils._rebuild_wrapper_subclass torch.per_channel_affine "
    "torch.per_channel_affine_float_qparams torch.per_channel_symmetric "
    "torch.per_tensor_affine torch.per_tensor_symmetric "
    "torch.QInt32Storage torch.QInt8Storage torch.QUInt2x4Storage torch.QUInt4x2Storage "
    "torch.QUInt8Storage torch.ComplexDoubleStorage torch.ComplexFloatStorage "
    "torch.cuda.ComplexDoubleStorage torch.cuda.ComplexFloatStorage"
).split()
_NUMPY = (
    "numpy.ndarray numpy.dtype numpy._core.multiarray._reconstruct "
    "numpy.core.multiarray._reconstruct numpy._core.multiarray.scalar "
    "numpy.core.multiarray.scalar numpy._core.numeric._frombuffer "
    "numpy.core.numeric._frombuffer"
).split()

DEFAULT_ALLOW: frozenset[str] = frozenset(
    [f"torch.{t}Storage" for t in _TORCH_TENSOR_TYPES]
    + [f"torch.{t}Tensor" for t in _TORCH_TENSOR_TYPES]
    + [f"torch.cuda.{t}Storage" for t in _TORCH_TENSOR_TYPES]
    + [f"torch.cuda.{t}Tensor" for t in _TORCH_TENSOR_TYPES]
    + [f"torch.sparse.{t}Tensor" for t in _TORCH_TENSOR_TYPES if t != "Bool"]
    + [f"torch.cuda.sparse.{t}Tensor" for t in _TORCH_TENSOR_TYPES if t != "Bool"]
    + [f"torch.{d}" for d in _TORCH_DTYPES]
    + _TORCH_MISC
    + _NUMPY
)
"""Globals a pickle may import without a finding: ordinary PyTorch checkpoints (the
names ``torch.load(weights_only=True)`` accepts in torch 2.14) and numpy arrays."""

# Limits: the scanner fails closed (a finding) when an input exceeds them.
_MAX_DEPTH = 4  # archives/pickles nested inside each other
_MAX_LINE = 1 << 16  # one text argument of a protocol-0 opcode
_MAX_STACK = 1 << 20  # items on the modelled unpickler stack
_MAX_TEXT = 64 << 20  # JSON/YAML text parsed for _target_
_MAX_YAML = 16 << 20
_MAX_MEMBER = 8 << 30  # bytes read from one archive member
_MAX_STRING_CONFIG = 1 << 20  # a string value re-parsed as a config
_CHUNK = 1 << 20

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One reason to distrust a file.

    Attributes
    ----------
    path : str
        The file on disk (or the name given to :func:`scan_bytes`).
    member : str
        Where inside it: archive member names joined by ``!`` (``""`` for the file itself).
    kind : str
        ``global`` (a pickle imports a name outside the allow-list), ``unknown-global``
        (a ``STACK_GLOBAL`` whose name cannot be worked out statically), ``extension``
        (``EXT1/2/4``: a name from the copyreg registry), ``malformed-pickle``,
        ``trailing-bytes`` (data after ``STOP``), ``target`` (a ``_target_`` outside the
        allow-list), ``yaml-python-tag``, ``unreadable-member``, ``malformed``, ``limit``
        or ``unreadable`` (the input itself could not be read).
    detail : str
        Human-readable detail, e.g. the imported name.
    """

    path: str
    member: str
    kind: str
    detail: str

    def line(self) -> str:
        """One tab-separated line: file, member, kind, detail."""
        return f"{self.path}\t{self.member or '-'}\t{self.kind}\t{self.detail}"


@dataclass(frozen=True)
class ScanReport:
    """What scanning one file found.

    Attributes
    ----------
    path : str
    findings : tuple of Finding
    formats : tuple of str
        ``member=format`` for everything recognised (``pickle``, ``zip``, ``tar``,
        ``npy``, ``safetensors``, ``json``, ``yaml``, ``text``, ``data``, ...).
    """

    path: str
    findings: tuple[Finding, ...]
    formats: tuple[str, ...] = ()

    @property
    def unreadable(self) -> bool:
        """True when the input itself could not be opened or read."""
        return any(f.kind == "unreadable" for f in self.findings)

    @property
    def flagged(self) -> bool:
        """True when there is any finding (a file is clean only with none)."""
        return bool(self.findings)

    @property
    def verdict(self) -> str:
        """``"unreadable"``, ``"flagged"`` or ``"clean"``."""
        if self.unreadable:
            return "unreadable"
        return "flagged" if self.findings else "clean"

    def __repr__(self) -> str:
        return (f"ScanReport(path={self.path!r}, verdict={self.verdict!r}, "
                f"findings={len(self.findings)})")


@dataclass
class _Ctx:
    path: str
    allow: frozenset[str]
    targets_allow: frozenset[str]
    findings: list[Finding] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)

    def add(self, member: str, kind: str, detail: str) -> None:
        self.findings.append(Finding(self.path, member, kind, detail))

    def fmt(self, member: str, name: str) -> None:
        self.formats.append(f"{member or '-'}={name}")


# --------------------------------------------------------------------------------------
# The pickle opcode walker
# --------------------------------------------------------------------------------------


class _Malformed(Exception):
    pass


class _Limit(Exception):
    pass


class _Reader:
    """A bounded reader: never reads more than ``limit`` bytes, one line at most 64 KiB."""

    def __init__(self, f: IO[bytes], limit: int | None = None):
        self.f = f
        self.pos = 0
        self.limit = limit

    def read(self, n: int) -> bytes:
        if n < 0:
            raise _Malformed("negative length")
        if self.limit is not None and self.pos + n > self.limit:
            raise _Malformed(f"length {n} runs past the end of the data")
        data = self.f.read(n) if n else b""
        self.pos += len(data)
        if len(data) != n:
            raise _Malformed(f"wanted {n} bytes, got {len(data)}")
        return data

    def readline(self) -> bytes:
        line = self.f.readline(_MAX_LINE)
        self.pos += len(line)
        if not line.endswith(b"\n"):
            raise _Malformed("unterminated text argument")
        return line


class _Mark:
    __slots__ = ()


_MARK = _Mark()


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Bytes:
    value: bytes


@dataclass(frozen=True)
class _Tuple:
    items: tuple


class _Any:
    __slots__ = ()


_ANY = _Any()

_STR_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_PY2STR_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}
_BYTES_OPS = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_CONST_OPS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET",
    "NEXT_BUFFER", "PERSID",
}


@dataclass
class _PickleResult:
    imports: list[tuple[str, int]]  # (name, position)
    unknown: list[int]  # positions of STACK_GLOBALs whose name is not static
    extensions: list[int]
    nested: list[tuple[int, bytes]]  # byte strings that look like pickles
    storage_keys: set[str]
    calls: int  # REDUCE/INST/OBJ/NEWOBJ/BUILD that completed
    ops: int
    end: int
    error: str | None  # None when the walk reached STOP cleanly


def _import_name(module: str, qual: str, proto: int) -> str:
    """The name the unpickler really imports: like ``pickle.Unpickler.find_class``,
    protocol < 3 streams map Python 2 names (``__builtin__.getattr`` -> builtins)."""
    if proto < 3:
        if (module, qual) in _compat_pickle.NAME_MAPPING:
            module, qual = _compat_pickle.NAME_MAPPING[(module, qual)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{qual}"


def _walk(reader: _Reader, *, max_ops: int | None = None,
          trace: list | None = None) -> _PickleResult:
    """Model one pickle from the reader's position to its STOP (or the first error)."""
    stack: list = []
    memo: dict[int, object] = {}
    res = _PickleResult([], [], [], [], set(), 0, 0, 0, None)
    proto = 0

    def pop():
        if not stack:
            raise _Malformed("stack underflow")
        item = stack.pop()
        if item is _MARK:
            raise _Malformed("popped a MARK")
        return item

    def pop_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise _Malformed("no MARK on the stack")

    def push(item) -> None:
        if len(stack) >= _MAX_STACK:
            raise _Limit("pickle stack deeper than the scanner's limit")
        stack.append(item)

    try:
        while True:
            pos = reader.pos
            code = reader.read(1) if reader.limit is None or reader.pos < reader.limit else b""
            if not code:
                raise _Malformed("ended without STOP")
            op = pickletools.code2op.get(code.decode("latin-1"))
            if op is None:
                raise _Malformed(f"unknown opcode {code!r} at byte {pos}")
            try:
                arg = op.arg.reader(reader) if op.arg is not None else None
            except (ValueError, OverflowError, UnicodeDecodeError, struct.error) as e:
                raise _Malformed(f"bad argument for {op.name} at byte {pos}: {e}") from None
            res.ops += 1
            if max_ops is not None and res.ops > max_ops:
                raise _Limit("too many opcodes")
            if trace is not None:
                trace.append((pos, op.name, arg))
            name = op.name
            if name in _STR_OPS:
                push(_Str(arg))
            elif name in _PY2STR_OPS:
                push(_Str(arg) if isinstance(arg, str) else _Bytes(arg))
            elif name in _BYTES_OPS:
                value = bytes(arg)
                if len(value) > 2 and value[0] == 0x80 and value[1] <= 5:
                    res.nested.append((pos, value))
                push(_Bytes(value))
            elif name in _CONST_OPS:
                push(_ANY)
            elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
                if name == "PROTO":
                    if not 0 <= arg <= 5:
                        raise _Malformed(f"unsupported protocol {arg}")
                    proto = arg
            elif name == "MARK":
                push(_MARK)
            elif name == "STOP":
                pop()
                res.end = reader.pos
                return res
            elif name == "POP":
                if not stack:
                    raise _Malformed("stack underflow")
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("DUP on an empty stack")
                push(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("PUT on an empty stack")
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("MEMOIZE on an empty stack")
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg) not in memo:
                    raise _Malformed(f"memo key {arg} missing")
                push(memo[int(arg)])
            elif name == "GLOBAL":
                module, _, qual = arg.partition(" ")
                res.imports.append((_import_name(module, qual, proto), pos))
                push(_ANY)
            elif name == "STACK_GLOBAL":
                qual, module = pop(), pop()
                if isinstance(module, _Str) and isinstance(qual, _Str):
                    res.imports.append((_import_name(module.value, qual.value, proto), pos))
                else:
                    res.unknown.append(pos)
                push(_ANY)
            elif name == "INST":
                module, _, qual = arg.partition(" ")
                res.imports.append((_import_name(module, qual, proto), pos))
                pop_mark()
                res.calls += 1
                push(_ANY)
            elif name in ("EXT1", "EXT2", "EXT4"):
                res.extensions.append(pos)
                push(_ANY)
            elif name == "OBJ":
                if not pop_mark():
                    raise _Malformed("OBJ without a class")
                res.calls += 1
                push(_ANY)
            elif name in ("REDUCE", "NEWOBJ"):
                pop(), pop()
                res.calls += 1
                push(_ANY)
            elif name == "NEWOBJ_EX":
                pop(), pop(), pop()
                res.calls += 1
                push(_ANY)
            elif name == "BUILD":
                pop()
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("BUILD without an object")
                res.calls += 1
            elif name == "TUPLE":
                push(_Tuple(tuple(pop_mark())))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = [pop() for _ in range(n)][::-1]
                push(_Tuple(tuple(items)))
            elif name in ("LIST", "DICT", "FROZENSET"):
                pop_mark()
                push(_ANY)
            elif name == "APPEND":
                pop()
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("APPEND without a list")
            elif name == "SETITEM":
                pop(), pop()
                if not stack or stack[-1] is _MARK:
                    raise _Malformed("SETITEM without a dict")
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                pop_mark()
                if not stack or stack[-1] is _MARK:
                    raise _Malformed(f"{name} without a container")
            elif name == "BINPERSID":
                pid = pop()
                if (isinstance(pid, _Tuple) and len(pid.items) >= 3
                        and isinstance(pid.items[2], _Str)):
                    res.storage_keys.add(pid.items[2].value)
                push(_ANY)
            else:  # pragma: no cover - every opcode in pickletools is handled above
                raise _Malformed(f"unmodelled opcode {name}")
    except _Malformed as e:
        res.error = str(e)
        res.end = reader.pos
        return res


def _pickle_findings(ctx: _Ctx, member: str, res: _PickleResult, depth: int) -> None:
    for name, pos in res.imports:
        if name not in ctx.allow:
            shown = name if _IDENT.match(name) else repr(name)
            ctx.add(member, "global", f"imports {shown} (byte {pos})")
    for pos in res.unknown:
        ctx.add(member, "unknown-global", f"STACK_GLOBAL with a computed name (byte {pos})")
    for pos in res.extensions:
        ctx.add(member, "extension", f"EXT opcode: a name from the copyreg registry (byte {pos})")
    for pos, inner in res.nested:
        _scan_blob(ctx, lambda inner=inner: io.BytesIO(inner), len(inner),
                   f"{member}!bytes@{pos}", depth + 1)


def _looks_like_pickle(res: _PickleResult) -> bool:
    """For data without a PROTO header: is it a pickle, or would pickle.load call
    something before failing? (Text such as ``cat\ndog\n`` parses as a GLOBAL but
    fails before any call, so it is not treated as a pickle.)"""
    if res.error is None:
        return True
    imports = [n for n, _ in res.imports if _IDENT.match(n)]
    return bool((imports and res.calls) or res.unknown or res.extensions)


def _scan_pickle_stream(ctx: _Ctx, opener: Callable[[], IO[bytes]], size: int | None,
                        member: str, depth: int, *, strict: bool, offset: int = 0) -> bool:
    """Walk every pickle in a stream. Returns False when it is not a pickle at all."""
    with opener() as f:
        if offset:
            f.read(offset)
        reader = _Reader(f, None if size is None else size - offset)
        try:
            first = _walk(reader)
        except _Limit as e:
            ctx.fmt(member, "pickle")
            ctx.add(member, "limit", str(e))
            return True
        if not strict and not _looks_like_pickle(first):
            return False
        ctx.fmt(member, "pickle")
        _pickle_findings(ctx, member, first, depth)
        if first.error is not None:
            ctx.add(member, "malformed-pickle", first.error)
            return True
        # bytes after STOP: report them, and walk any further pickles stacked there.
        start = first.end
        while True:
            rest = f.read(1)
            if not rest:
                return True
            ctx.add(member, "trailing-bytes", f"data after STOP at byte {start + offset}")
            chained = io.BufferedReader(_Prepend(rest, f))  # type: ignore[arg-type]
            reader = _Reader(chained, None if size is None else size - offset - start)
            try:
                nxt = _walk(reader)
            except _Limit as e:
                ctx.add(member, "limit", str(e))
                return True
            if not _looks_like_pickle(nxt):
                return True
            _pickle_findings(ctx, f"{member}@{start + offset}", nxt, depth)
            if nxt.error is not None:
                return True
            start += nxt.end
            f = chained


class _Prepend(io.RawIOBase):
    """A raw stream that yields ``head`` then the rest of ``f``."""

    def __init__(self, head: bytes, f: IO[bytes]):
        self.head, self.f = head, f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.f.read(len(b))
        b[:len(data)] = data
        return len(data)


# --------------------------------------------------------------------------------------
# The _target_ finder
# --------------------------------------------------------------------------------------


def _parse_string_config(text: str):
    """Parse a string as JSON, a Python literal or YAML; None when it is none of them."""
    s = text.strip()
    if not s or len(s) > _MAX_STRING_CONFIG:
        return None
    if s[0] in "{[(":
        try:
            return json.loads(s)
        except (ValueError, RecursionError):
            pass
        try:
            return ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    if ":" in s or s.startswith("!"):
        try:
            return yaml.safe_load(s)
        except (yaml.YAMLError, RecursionError, ValueError):
            return None
    return None


def find_targets(obj) -> list[tuple[str, object]]:
    """Every ``_target_`` value in a parsed config, with its key path.

    Walks dicts, lists and tuples, and re-parses string values that are themselves
    configs (JSON, YAML or Python literals, as found in safetensors ``__metadata__``).

    Parameters
    ----------
    obj : object
        A parsed JSON/YAML/literal value.

    Returns
    -------
    list of (str, object)
        ``(key_path, target)`` pairs; ``target`` is whatever the config holds (usually a
        string; anything else is reported too).

    Examples
    --------
    >>> find_targets({"model": {"_target_": "a.B", "n": 2}})
    [('model._target_', 'a.B')]
    """
    found: list[tuple[str, object]] = []
    stack = [(obj, "", 0)]
    seen: set[int] = set()
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{path}.{k}" if path else str(k)
                if k == "_target_":
                    found.append((key, v))
                stack.append((v, key, depth))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                stack.append((v, f"{path}[{i}]", depth))
        elif isinstance(node, str) and depth < 3:
            inner = _parse_string_config(node)
            if isinstance(inner, (dict, list, tuple)):
                stack.append((inner, f"{path}<parsed>", depth + 1))
    found.sort(key=lambda kv: kv[0])
    return found


def _target_findings(ctx: _Ctx, member: str, parsed) -> None:
    for key, target in find_targets(parsed):
        if not (isinstance(target, str) and target in ctx.targets_allow):
            ctx.add(member, "target", f"{key} = {target!r}")


def _json_pairs(pairs):
    # keep duplicate keys visible: a second "_target_" must not hide the first
    out: dict = {}
    for k, v in pairs:
        if k in out:
            out.setdefault("\x00dup", []).append({k: v})
        else:
            out[k] = v
    return out


_PY_TAG = "tag:yaml.org,2002:python/"


def _yaml_scan(ctx: _Ctx, member: str, text: str) -> bool:
    """Walk a YAML node graph (composed, never constructed). False if not YAML."""
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError, ValueError):
        return False
    if not any(isinstance(d, (yaml.MappingNode, yaml.SequenceNode)) for d in docs):
        return False  # a lone scalar is just text
    ctx.fmt(member, "yaml")
    seen: set[int] = set()
    plain = []
    stack = [d for d in docs if d is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag.startswith(_PY_TAG):
            ctx.add(member, "yaml-python-tag", f"{node.tag.replace('tag:yaml.org,2002:', '!!')}"
                    f" at line {node.start_mark.line + 1}")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == "_target_":
                    target = v.value if isinstance(v, yaml.ScalarNode) else f"<{v.id}>"
                    if target not in ctx.targets_allow:
                        ctx.add(member, "target",
                                f"_target_ = {target!r} at line {k.start_mark.line + 1}")
                stack.extend((k, v))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str"):
            plain.append(node.value)
    for s in plain:  # configs hidden in string values
        inner = _parse_string_config(s)
        if isinstance(inner, (dict, list, tuple)):
            _target_findings(ctx, member + "<string>", inner)
    return True


def _scan_text(ctx: _Ctx, opener, size: int | None, member: str) -> None:
    with opener() as f:
        raw = f.read(_MAX_TEXT + 1)
    if len(raw) > _MAX_TEXT:
        ctx.fmt(member, "text")
        ctx.add(member, "limit", "text too large to check for _target_")
        return
    text = raw.decode("utf-8")
    s = text.lstrip("\ufeff \t\r\n")
    if s[:1] in ("{", "["):
        try:
            parsed = json.loads(s, object_pairs_hook=_json_pairs)
        except (ValueError, RecursionError):
            parsed = None
        if parsed is not None:
            ctx.fmt(member, "json")
            _target_findings(ctx, member, parsed)
            return
    if len(text) <= _MAX_YAML and _yaml_scan(ctx, member, text):
        return
    if len(text) > _MAX_YAML and "_target_" in text:
        ctx.add(member, "limit", "large text mentions _target_")
    ctx.fmt(member, "text")


# --------------------------------------------------------------------------------------
# Containers and format recognition
# --------------------------------------------------------------------------------------


def _read_head(opener, n: int = 512) -> bytes:
    with opener() as f:
        return f.read(n)


def sniff(head: bytes) -> str:
    """Name the format of some data from its first bytes (at least 262 for tar).

    Returns one of ``zip``, ``gzip``, ``bz2``, ``xz``, ``tar``, ``npy``, ``pickle``
    (protocol 2+ header), ``safetensors``, ``text`` or ``data``. Protocol 0/1 pickles
    have no header: :func:`scan_bytes` decides those by walking them.
    """
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return "pickle"
    if len(head) >= 10 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= (100 << 20):
            return "safetensors"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as e:
            if e.start >= len(head) - 3:  # a character cut at the end of the head
                return "text"
    return "data"


def _stream_size(opener) -> int:
    n = 0
    with opener() as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                return n
            n += len(chunk)
            if n > _MAX_MEMBER:
                raise _Limit("member larger than the scanner's limit")


def _scan_zip(ctx: _Ctx, opener, member: str, depth: int) -> None:
    with opener() as f:
        if not f.seekable():  # pragma: no cover - every opener here is seekable
            f = io.BytesIO(f.read())
        try:
            zf = zipfile.ZipFile(f)
            infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            ctx.add(member, "unreadable-member", f"broken zip: {e}")
            return
        ctx.fmt(member, "zip")
        # torch checkpoints: data.pkl names its raw storage members; torch never
        # unpickles those, so they are read (CRC-checked) but not parsed.
        storages: set[str] = set()
        pkls = [i for i in infos if i.filename.endswith("data.pkl")]
        order = pkls + [i for i in infos if i not in pkls]
        for info in order:
            name = f"{member}!{info.filename}" if member else info.filename
            sub = (lambda info=info: zf.open(info))
            try:
                size = _stream_size(sub)  # reads it all: CRC and decompression errors
            except _Limit as e:
                ctx.add(name, "limit", str(e))
                continue
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
                    NotImplementedError, zlib.error, lzma.LZMAError) as e:
                ctx.add(name, "unreadable-member", f"{type(e).__name__}: {e}")
                continue
            if info.is_dir() and size == 0:
                continue
            prefix, _, key = info.filename.rpartition("/data/")
            if key in storages and prefix and f"{prefix}/data.pkl" in {p.filename for p in pkls}:
                ctx.fmt(name, "storage")
                continue
            keys = _scan_blob(ctx, sub, size, name, depth + 1)
            if info in pkls and keys:
                storages |= keys


def _scan_tar(ctx: _Ctx, opener, member: str, depth: int) -> None:
    with opener() as f:
        try:
            tf = tarfile.open(fileobj=f, mode="r:")
            members = tf.getmembers()
        except (tarfile.TarError, OSError, ValueError, EOFError) as e:
            ctx.add(member, "unreadable-member", f"broken tar: {e}")
            return
        ctx.fmt(member, "tar")
        for m in members:
            name = f"{member}!{m.name}" if member else m.name
            if m.isdir():
                continue
            if not m.isfile():
                ctx.add(name, "unreadable-member",
                        "link or special file in a model archive")
                continue
            sub = (lambda m=m: tf.extractfile(m))
            try:
                size = _stream_size(sub)
            except _Limit as e:
                ctx.add(name, "limit", str(e))
                continue
            except (tarfile.TarError, OSError, ValueError, EOFError) as e:
                ctx.add(name, "unreadable-member", f"{type(e).__name__}: {e}")
                continue
            if size != m.size:
                ctx.add(name, "unreadable-member", "truncated member")
                continue
            _scan_blob(ctx, sub, size, name, depth + 1)


def _scan_npy(ctx: _Ctx, opener, size: int | None, member: str, depth: int) -> None:
    with opener() as f:
        head = f.read(10)
        if len(head) < 10:
            ctx.add(member, "malformed", "truncated .npy header")
            return
        major = head[6]
        if major == 1:
            (hlen,) = struct.unpack("<H", head[8:10])
            start = 10
        else:
            rest = f.read(2)
            (hlen,) = struct.unpack("<I", head[8:10] + rest)
            start = 12
        header = f.read(hlen) if hlen <= (1 << 20) else b""
    try:
        meta = ast.literal_eval(header.decode("latin-1"))
        descr = meta["descr"]
    except Exception:  # noqa: BLE001 - any parse failure means a broken header
        ctx.fmt(member, "npy")
        ctx.add(member, "malformed", "unreadable .npy header")
        return
    ctx.fmt(member, "npy")
    if "O" in str(descr):  # object arrays are a pickle after the header
        _scan_pickle_stream(ctx, opener, size, member + "<object-array>", depth,
                            strict=True, offset=start + hlen)


def _scan_safetensors(ctx: _Ctx, opener, size: int | None, member: str) -> bool:
    with opener() as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if size is not None and n > size - 8:
            return False
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_pairs)
    except (ValueError, RecursionError):
        return False
    if not isinstance(header, dict):
        return False
    ctx.fmt(member, "safetensors")
    meta = header.get("__metadata__", {})
    if meta is not None and not isinstance(meta, dict):
        ctx.add(member, "malformed", "__metadata__ is not a mapping")
    _target_findings(ctx, member, header)
    return True


_DECOMPRESS = {"gzip", "bz2", "xz"}


class _Closing(io.BufferedReader):
    """A buffered decompressed stream that also closes the raw file under it."""

    def __init__(self, stream, raw):
        super().__init__(stream, buffer_size=_CHUNK)
        self._under = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._under.close()


def _decompressed(kind: str, opener) -> IO[bytes]:
    raw = opener()
    if kind == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "bz2":
        stream = bz2.BZ2File(raw, mode="rb")
    else:
        stream = lzma.LZMAFile(raw, mode="rb")
    return _Closing(stream, raw)


def _scan_blob(ctx: _Ctx, opener, size: int | None, member: str, depth: int) -> set[str]:
    """Recognise one blob by content and scan it. Returns torch storage keys, if any."""
    if depth > _MAX_DEPTH:
        ctx.add(member, "limit", "nested too deeply")
        return set()
    try:
        head = _read_head(opener)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, tarfile.TarError) as e:
        ctx.add(member, "unreadable-member", f"{type(e).__name__}: {e}")
        return set()
    kind = sniff(head)
    try:
        if kind == "zip":
            _scan_zip(ctx, opener, member, depth)
        elif kind in _DECOMPRESS:
            ctx.fmt(member, kind)
            inner = functools.partial(_decompressed, kind, opener)
            try:
                inner_size = _stream_size(inner)
            except _Limit as e:
                ctx.add(member, "limit", str(e))
                return set()
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as e:
                ctx.add(member, "unreadable-member", f"broken {kind} stream: {e}")
                return set()
            _scan_blob(ctx, inner, inner_size, member + f"<{kind}>", depth + 1)
        elif kind == "tar":
            _scan_tar(ctx, opener, member, depth)
        elif kind == "npy":
            _scan_npy(ctx, opener, size, member, depth)
        elif kind == "pickle":
            return _scan_pickle_with_keys(ctx, opener, size, member, depth, strict=True)
        elif kind == "safetensors" and _scan_safetensors(ctx, opener, size, member):
            pass
        elif _scan_pickle_with_keys(ctx, opener, size, member, depth, strict=False) is not None:
            pass
        elif kind == "text" or kind == "safetensors":
            try:
                _scan_text(ctx, opener, size, member)
            except UnicodeDecodeError:
                ctx.fmt(member, "data")
        else:
            ctx.fmt(member, "data")
    except _Limit as e:
        ctx.add(member, "limit", str(e))
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError,
            zlib.error, RuntimeError, struct.error) as e:
        ctx.add(member, "unreadable-member", f"{type(e).__name__}: {e}")
    return set()


def _scan_pickle_with_keys(ctx: _Ctx, opener, size, member, depth, *, strict: bool):
    """Like _scan_pickle_stream, and also collects torch storage keys (data.pkl)."""
    keys: set[str] = set()
    with opener() as f:
        try:
            res = _walk(_Reader(f, size))
            keys = res.storage_keys
        except _Limit:
            pass
    found = _scan_pickle_stream(ctx, opener, size, member, depth, strict=strict)
    if not found:
        return None
    return keys


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def _ctx(path: str, allow: Iterable[str] | None) -> _Ctx:
    extra = frozenset(allow or ())
    return _Ctx(path, DEFAULT_ALLOW | extra, extra)


def scan_bytes(data: bytes, *, name: str = "<bytes>",
               allow: Iterable[str] | None = None) -> ScanReport:
    """Scan in-memory data; see :func:`scan_file`.

    Parameters
    ----------
    data : bytes
    name : str
        Shown as the path in findings.
    allow : iterable of str, optional
        Extra fully qualified names accepted as pickle globals and as ``_target_`` values
        (exact match; no prefixes, no wildcards).

    Returns
    -------
    ScanReport
    """
    ctx = _ctx(name, allow)
    data = bytes(data)
    _scan_blob(ctx, lambda: io.BytesIO(data), len(data), "", 0)
    return ScanReport(name, tuple(ctx.findings), tuple(ctx.formats))


def scan_file(path: str | os.PathLike, *, allow: Iterable[str] | None = None) -> ScanReport:
    """Scan one file without executing, importing or unpickling anything in it.

    The file is streamed (archive members are read in 1 MiB chunks), so a large
    checkpoint costs time proportional to its size and little memory.

    Parameters
    ----------
    path : str or path-like
    allow : iterable of str, optional
        Extra exact names accepted as pickle globals and ``_target_`` values.
        :data:`DEFAULT_ALLOW` always applies to pickles; no ``_target_`` is allowed
        unless listed here.

    Returns
    -------
    ScanReport
        ``verdict`` is ``"clean"``, ``"flagged"`` or ``"unreadable"``.

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
    ctx = _ctx(p, allow)
    try:
        size = os.path.getsize(p)
        with open(p, "rb"):
            pass
    except OSError as e:
        ctx.add("", "unreadable", f"{type(e).__name__}: {e.strerror or e}")
        return ScanReport(p, tuple(ctx.findings), ())
    _scan_blob(ctx, lambda: open(p, "rb"), size, "", 0)
    return ScanReport(p, tuple(ctx.findings), tuple(ctx.formats))


def _walk_paths(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        else:
            yield p


def scan_paths(paths: Iterable[str | os.PathLike], *,
               allow: Iterable[str] | None = None) -> list[ScanReport]:
    """Scan files and every file under folders, in sorted order.

    Parameters
    ----------
    paths : iterable of str or path-like
    allow : iterable of str, optional

    Returns
    -------
    list of ScanReport
        One per file.
    """
    allow = tuple(allow or ())
    return [scan_file(p, allow=allow) for p in _walk_paths(paths)]


def pickle_ops(data: bytes, *, limit: int = 200) -> list[tuple[int, str, object]]:
    """The opcodes of the first pickle in ``data``: ``(byte, opcode name, argument)``.

    Teaching view of "a model file is a program"; nothing is executed.

    Parameters
    ----------
    data : bytes
        A pickle (for a torch checkpoint, its ``data.pkl`` member).
    limit : int
        Stop after this many opcodes.
    """
    trace: list = []
    try:
        _walk(_Reader(io.BytesIO(bytes(data)), len(data)), max_ops=limit, trace=trace)
    except _Limit:
        pass
    return trace


def pickle_globals(data: bytes) -> list[str]:
    """Every name the first pickle in ``data`` would import, in order (statically).

    Examples
    --------
    >>> import pickle, collections
    >>> pickle_globals(pickle.dumps(collections.OrderedDict()))
    ['collections.OrderedDict']
    """
    res = _walk(_Reader(io.BytesIO(bytes(data)), len(data)))
    return [name for name, _ in res.imports]


def member_bytes(path: str | os.PathLike, suffix: str = "data.pkl") -> bytes:
    """The first zip member of ``path`` whose name ends with ``suffix`` (default: a torch
    checkpoint's pickle), for :func:`pickle_ops`."""
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(suffix):
                return zf.read(name)
    raise KeyError(f"no member ending with {suffix!r} in {Path(path).name}")

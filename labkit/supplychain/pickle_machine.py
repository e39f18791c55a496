"""A model of CPython's unpickler that executes nothing: which names would a pickle import?

The model follows ``Modules/_pickle.c`` (the unpickler ``pickle.load``, ``torch.load`` and
``numpy.load`` run) and ``pickle._Unpickler`` (the pure-Python one), not the stricter
disassembler in :mod:`pickletools`. Where the two unpicklers differ, or a value is only
known at run time, the model takes the reading that lets the stream go on (an
over-approximation): it may report a name that a real load would never reach, but it
never stops early where a real load goes on. Concretely:

* argument syntax as the unpickler reads it: ``INT``/``LONG`` lines in any base
  (``0x10``, ``010``), unbounded text lines (up to the budget), UTF-8 ``GLOBAL`` names, a
  last line without a newline (the pure-Python unpickler strips one byte anyway);
* the mark stack and its "fence" as in C (``POP`` on a mark pops the mark);
* every ``GLOBAL``/``STACK_GLOBAL``/``INST`` import is recorded *before* any call: importing
  a module runs its code even if nothing is called afterwards;
* a stream without ``STOP`` is walked to its end (everything before the error ran);
* after ``STOP`` the next pickle is walked too (loaders call ``load`` repeatedly: torch's
  legacy format stacks five pickles), with the memo kept (a reused ``Unpickler``);
* a torch legacy file (first pickle = torch's magic number) ends after its fifth pickle:
  what follows is raw storage bytes that torch never unpickles.

References
----------
* CPython ``Modules/_pickle.c`` and ``Lib/pickle.py`` (``load_*``, ``find_class``,
  ``marker``, ``Pdata_pop``); Python docs, ``pickle`` ("Warning: The pickle module is
  not secure").
* PyTorch ``torch/serialization.py`` (``_legacy_load``, ``MAGIC_NUMBER``).
* Trail of Bits, "Never a dill moment: exploiting machine learning pickle files" (2021),
  and fickling; Huang et al., "Models are codes" (MalHug, ASE 2024), on scanners that
  stop at the first parse error.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from dataclasses import dataclass, field

from .blob import Blob
from .findings import BudgetExceeded

__all__ = ["PickleRun", "run_pickle", "OPNAMES", "TORCH_MAGIC"]

TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy format)
_MAX_STACK = 1 << 20
_BIG = 1 << 20  # byte-string arguments above this are skipped, not copied

# opcode byte -> (name, argument kind)
_OPS: dict[int, tuple[str, str]] = {
    ord(c): (n, a) for c, n, a in [
        ("(", "MARK", ""), (".", "STOP", ""), ("0", "POP", ""), ("1", "POP_MARK", ""),
        ("2", "DUP", ""), ("F", "FLOAT", "line"), ("I", "INT", "line"),
        ("J", "BININT", "i4"), ("K", "BININT1", "u1"), ("L", "LONG", "line"),
        ("M", "BININT2", "u2"), ("N", "NONE", ""), ("P", "PERSID", "line"),
        ("Q", "BINPERSID", ""), ("R", "REDUCE", ""), ("S", "STRING", "line"),
        ("T", "BINSTRING", "s4"), ("U", "SHORT_BINSTRING", "n1"), ("V", "UNICODE", "line"),
        ("X", "BINUNICODE", "n4"), ("a", "APPEND", ""), ("b", "BUILD", ""),
        ("c", "GLOBAL", "line2"), ("d", "DICT", ""), ("}", "EMPTY_DICT", ""),
        ("e", "APPENDS", ""), ("g", "GET", "line"), ("h", "BINGET", "u1"),
        ("i", "INST", "line2"), ("j", "LONG_BINGET", "u4"), ("l", "LIST", ""),
        ("]", "EMPTY_LIST", ""), ("o", "OBJ", ""), ("p", "PUT", "line"),
        ("q", "BINPUT", "u1"), ("r", "LONG_BINPUT", "u4"), ("s", "SETITEM", ""),
        ("t", "TUPLE", ""), (")", "EMPTY_TUPLE", ""), ("u", "SETITEMS", ""),
        ("G", "BINFLOAT", "f8"), ("B", "BINBYTES", "n4"), ("C", "SHORT_BINBYTES", "n1"),
        ("\x80", "PROTO", "u1"), ("\x81", "NEWOBJ", ""), ("\x82", "EXT1", "u1"),
        ("\x83", "EXT2", "u2"), ("\x84", "EXT4", "i4"), ("\x85", "TUPLE1", ""),
        ("\x86", "TUPLE2", ""), ("\x87", "TUPLE3", ""), ("\x88", "NEWTRUE", ""),
        ("\x89", "NEWFALSE", ""), ("\x8a", "LONG1", "n1"), ("\x8b", "LONG4", "s4"),
        ("\x8c", "SHORT_BINUNICODE", "n1"), ("\x8d", "BINUNICODE8", "n8"),
        ("\x8e", "BINBYTES8", "n8"), ("\x8f", "EMPTY_SET", ""), ("\x90", "ADDITEMS", ""),
        ("\x91", "FROZENSET", ""), ("\x92", "NEWOBJ_EX", ""), ("\x93", "STACK_GLOBAL", ""),
        ("\x94", "MEMOIZE", ""), ("\x95", "FRAME", "u8"), ("\x96", "BYTEARRAY8", "n8"),
        ("\x97", "NEXT_BUFFER", ""), ("\x98", "READONLY_BUFFER", ""),
    ]
}
OPNAMES: frozenset[str] = frozenset(n for n, _ in _OPS.values())
"""Every opcode the model handles (all of protocol 0 to 5)."""

_TEXT_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_PY2_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}
_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_PUSH_ANY = {"NEXT_BUFFER"}
# joblib stores array bytes inside the pickle stream, read by its BUILD override
_INLINE_DATA = {"joblib.numpy_pickle.NumpyArrayWrapper",
                "joblib.numpy_pickle_compat.NDArrayWrapper",
                "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"}


class _Stop(Exception):
    """The real unpickler stops here (an error it raises)."""


@dataclass(frozen=True)
class _Str:
    value: str


@dataclass(frozen=True)
class _Bytes:
    head: bytes
    offset: int  # where the bytes start (relative to the blob)
    size: int


@dataclass(frozen=True)
class _Int:
    value: int


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass(frozen=True)
class _Obj:
    made_by: str  # the name of the callable/class, "" when unknown


@dataclass(frozen=True)
class _Tuple:
    items: tuple


@dataclass(frozen=True)
class _Const:
    kind: str  # none, bool, float, list, dict, set, frozenset: never callable, never str


_CONST = {"NONE": _Const("none"), "NEWTRUE": _Const("bool"), "NEWFALSE": _Const("bool"),
          "BINFLOAT": _Const("float"), "FLOAT": _Const("float"), "EMPTY_LIST": _Const("list"),
          "EMPTY_DICT": _Const("dict"), "EMPTY_SET": _Const("set")}
_CALLABLE = (lambda v: isinstance(v, (_Global, _Obj, _Any)))


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<any>"


_ANY = _Any()


@dataclass
class PickleRun:
    """What the model saw in the pickles stacked at one offset of a blob.

    Attributes
    ----------
    imports : list of (str, int)
        Every name a loader would import, with the opcode's byte offset.
    unknown : list of int
        ``STACK_GLOBAL`` offsets whose module or name is computed at load time.
    extensions : list of int
        ``EXT*`` offsets.
    unmodelled : list of (int, str)
        Where the model cannot follow the stream (and why).
    nested : list of Blob
        Byte-string arguments that start like a pickle (``pickle.loads`` payloads).
    storage_keys : set of str
        torch storage keys named by persistent ids (``data.pkl``).
    pickles : int
        Pickles that reached ``STOP``.
    ops : int
    error : str or None
        Why the last pickle stopped before ``STOP`` (``None``: it ended cleanly).
    error_at : int
    protocol_header : bool
        The first pickle starts with a ``PROTO`` opcode.
    legacy_torch : bool
        The stream is a torch legacy checkpoint (magic number first).
    end : int
        Offset after the last opcode read.
    trace : list of (int, str, object)
        ``(offset, opcode, argument)`` when requested.
    """

    imports: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    extensions: list = field(default_factory=list)
    unmodelled: list = field(default_factory=list)
    nested: list = field(default_factory=list)
    storage_keys: set = field(default_factory=set)
    pickles: int = 0
    ops: int = 0
    error: str | None = None
    error_at: int = 0
    protocol_header: bool = False
    legacy_torch: bool = False
    end: int = 0
    trace: list | None = None


def _import_name(module: str, qual: str, proto: int) -> tuple[str, str]:
    """What ``find_class`` imports: protocol < 3 maps Python 2 names (``fix_imports``)."""
    if proto < 3:
        if (module, qual) in _compat_pickle.NAME_MAPPING:
            module, qual = _compat_pickle.NAME_MAPPING[(module, qual)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return module, qual


def _importable(module: str) -> bool:
    """Could ``__import__(module)`` import an installed module? Its first dotted part
    must be an identifier (``"hannels: 3"`` from a text file cannot name one)."""
    return module.split(".", 1)[0].isidentifier()


def _text(raw: bytes) -> object:
    """Python 2 STRING payload as a loader decodes it (ASCII by default, UTF-8 in torch)."""
    for enc in ("ascii", "utf-8", "latin-1"):
        try:
            return _Str(raw.decode(enc))
        except UnicodeDecodeError:
            continue
    return _ANY  # pragma: no cover - latin-1 decodes anything


def run_pickle(blob: Blob, offset: int = 0, *, max_line: int = 16 << 20,
               max_ops: int | None = None, trace: bool = False,
               follow: bool = True, limit: int | None = None,
               persistent: bool = False) -> PickleRun:
    """Walk the pickle(s) at ``offset`` of ``blob`` as the unpickler would, importing nothing.

    Parameters
    ----------
    blob : Blob
    offset : int
        Where a loader starts reading.
    max_line : int
        Longest text argument; longer raises
        :class:`~labkit.supplychain.findings.BudgetExceeded`.
    max_ops : int, optional
        Stop (budget) after this many opcodes.
    trace : bool
        Record ``(offset, opcode, argument)`` for each opcode.
    follow : bool
        Walk further pickles stacked after ``STOP``.
    limit : int, optional
        Stop quietly after this many opcodes (for teaching views).
    persistent : bool
        The loader may have a ``persistent_load`` (torch's ``data.pkl`` reader). Without
        one, ``PERSID``/``BINPERSID`` stop the load as in ``pickle.load``; the model
        assumes one anyway in streams with a protocol header and from the fourth pickle
        of a torch legacy stack on.

    Returns
    -------
    PickleRun
    """
    buf, base, size = blob.buf, blob.start, blob.size
    end = base + size
    run = PickleRun(trace=[] if trace else None)
    stack: list = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    pos = base + offset
    proto = 0
    run.protocol_header = size - offset >= 2 and buf[pos] == 0x80

    def fence() -> int:
        return marks[-1] if marks else 0

    def pop():
        if len(stack) <= fence():
            raise _Stop("stack underflow")
        return stack.pop()

    def top():
        if len(stack) <= fence():
            raise _Stop("stack underflow")
        return stack[-1]

    def pop_mark() -> list:
        if not marks:
            raise _Stop("could not find MARK")
        m = marks.pop()
        items = stack[m:]
        del stack[m:]
        return items

    def push(v) -> None:
        if len(stack) >= _MAX_STACK:
            raise BudgetExceeded("pickle stack deeper than the scanner's budget")
        stack.append(v)

    def take(n: int) -> bytes:
        nonlocal pos
        if n < 0:
            raise _Stop("negative length")
        if pos + n > end:
            raise _Stop("pickle data was truncated")
        data = bytes(buf[pos:pos + n])
        pos += n
        return data

    def line() -> bytes:
        nonlocal pos
        limit = min(end, pos + max_line + 1)
        nl = buf.find(b"\n", pos, limit)
        if nl < 0:
            if limit < end:
                raise BudgetExceeded("a text argument longer than the scanner's budget")
            if pos >= end:
                raise _Stop("pickle data was truncated")
            data = bytes(buf[pos:end])  # pure-Python unpickler: readline()[:-1]
            pos = end
            return data[:-1]
        data = bytes(buf[pos:nl])
        pos = nl + 1
        return data

    def big(n: int) -> _Bytes:
        """A byte-string argument: keep its head, skip the rest."""
        nonlocal pos
        if n < 0:
            raise _Stop("negative length")
        if pos + n > end:
            raise _Stop("pickle data was truncated")
        head = bytes(buf[pos:pos + min(n, 16)])
        v = _Bytes(head, pos - base, n)
        pos += n
        return v

    op_start = pos
    try:
        while True:
            op_start = pos
            if pos >= end:
                raise _Stop("ran out of input before STOP")
            code = buf[pos]
            pos += 1
            spec = _OPS.get(code)
            if spec is None:
                raise _Stop(f"invalid load key {bytes([code])!r}")
            name, kind = spec
            if limit is not None and run.ops >= limit:
                pos = op_start
                break
            run.ops += 1
            if max_ops is not None and run.ops > max_ops:
                raise BudgetExceeded("more pickle opcodes than the scanner's budget")
            arg = None
            if kind == "u1":
                arg = take(1)[0]
            elif kind == "u2":
                arg = struct.unpack("<H", take(2))[0]
            elif kind == "i4":
                arg = struct.unpack("<i", take(4))[0]
            elif kind == "u4":
                arg = struct.unpack("<I", take(4))[0]
            elif kind == "u8":
                arg = struct.unpack("<Q", take(8))[0]
            elif kind == "f8":
                arg = struct.unpack(">d", take(8))[0]
            elif kind in ("n1", "n4", "s4", "n8"):
                n = (take(1)[0] if kind == "n1" else struct.unpack("<I", take(4))[0]
                     if kind == "n4" else struct.unpack("<i", take(4))[0] if kind == "s4"
                     else struct.unpack("<Q", take(8))[0])
                arg = big(n) if n > _BIG else take(n)
            elif kind == "line":
                arg = line()
            elif kind == "line2":
                arg = (line(), line())
            if run.trace is not None:
                run.trace.append((op_start - base, name, _shown_arg(name, arg)))

            if name in _TEXT_OPS:
                if isinstance(arg, _Bytes):
                    push(_ANY)
                else:
                    try:
                        text = (arg.decode("raw-unicode-escape") if name == "UNICODE"
                                else arg.decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise _Stop(f"{name}: undecodable text") from None
                    push(_Str(text))
            elif name in _PY2_OPS:
                if isinstance(arg, _Bytes):
                    push(_ANY)
                    continue
                if name == "STRING":
                    if len(arg) >= 2 and arg[:1] == arg[-1:] and arg[:1] in (b"'", b'"'):
                        try:
                            arg = codecs.escape_decode(arg[1:-1])[0]
                        except ValueError:
                            raise _Stop("STRING: bad escape") from None
                    else:
                        raise _Stop("the STRING opcode argument must be quoted")
                push(_text(arg))
            elif name in _BYTES_OPS:
                value = arg if isinstance(arg, _Bytes) else _Bytes(arg[:16], pos - base - len(arg), len(arg))
                if value.size > 2 and value.head[0] == 0x80 and value.head[1] <= 5:
                    run.nested.append(blob.sub(value.offset, value.size))
                push(value)
            elif name in ("BININT", "BININT1", "BININT2"):
                push(_Int(arg))
            elif name in ("LONG1", "LONG4"):
                push(_Int(int.from_bytes(arg, "little", signed=True))
                     if isinstance(arg, bytes) and len(arg) <= 64 else _ANY)
            elif name in ("INT", "LONG"):
                s = arg.strip()
                if name == "LONG" and s.endswith(b"L"):
                    s = s[:-1]
                try:
                    push(_Int(int(s, 0)))
                except ValueError:
                    push(_ANY)  # strtol accepts more (leading zeros as octal, "5\0...")
            elif name in _CONST:
                push(_CONST[name])
            elif name == "EMPTY_TUPLE":
                push(_Tuple(()))
            elif name in _PUSH_ANY:
                push(_ANY)
            elif name == "PROTO":
                if arg > 5:
                    raise _Stop(f"unsupported pickle protocol: {arg}")
                proto = arg
            elif name in ("FRAME",):
                pass  # frames only group opcodes; ignoring them over-approximates
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "STOP":
                value = pop()
                run.pickles += 1
                if run.pickles == 1:
                    run.legacy_torch = value == _Int(TORCH_MAGIC)
                if run.legacy_torch and run.pickles >= 5:
                    break
                if not follow or pos >= end:
                    break
                stack.clear()
                marks.clear()
                proto = 0
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                push(top())
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                key = _memo_key(arg)
                memo[key] = top()
            elif name == "MEMOIZE":
                memo[len(memo)] = top()
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                key = _memo_key(arg)
                if key not in memo:
                    raise _Stop(f"memo key {key} missing")
                push(memo[key])
            elif name in ("GLOBAL", "INST"):
                # C's INST looks for the MARK first, pickle._Unpickler imports first:
                # the import is recorded either way.
                mod_raw, qual_raw = arg
                if not mod_raw or not qual_raw:
                    raise _Stop("bad readline")  # C: a line of at least one char
                try:
                    module, qual = mod_raw.decode("utf-8"), qual_raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Stop(f"{name}: name is not UTF-8") from None
                module, qual = _import_name(module, qual, proto)
                if not _importable(module):
                    raise _Stop(f"No module named {module!r}")
                run.imports.append((f"{module}.{qual}", op_start - base))
                if name == "INST":
                    pop_mark()
                    push(_Obj(f"{module}.{qual}"))
                else:
                    push(_Global(f"{module}.{qual}"))
            elif name == "STACK_GLOBAL":
                qual, module = pop(), pop()
                if isinstance(module, _Str) and isinstance(qual, _Str):
                    mod, q = _import_name(module.value, qual.value, proto)
                    if not _importable(mod):
                        raise _Stop(f"No module named {mod!r}")
                    run.imports.append((f"{mod}.{q}", op_start - base))
                    push(_Global(f"{mod}.{q}"))
                elif isinstance(module, (_Bytes, _Int, _Tuple)) or isinstance(qual, (_Bytes, _Int, _Tuple)):
                    raise _Stop("STACK_GLOBAL requires str")
                else:
                    run.unknown.append(op_start - base)
                    push(_Global(""))
            elif name in ("EXT1", "EXT2", "EXT4"):
                if arg <= 0:
                    raise _Stop("EXT specifies code <= 0")
                if not (run.protocol_header or run.pickles):
                    # the standard library registers no extension codes: a loader fails
                    # here unless its program called copyreg.add_extension; reported only
                    # in streams that are pickles by their header
                    raise _Stop("unregistered extension code")
                run.extensions.append(op_start - base)
                push(_Global(""))
            elif name == "OBJ":
                items = pop_mark()
                if not items or not _CALLABLE(items[0]):
                    raise _Stop("OBJ without a class")
                push(_Obj(items[0].name if isinstance(items[0], _Global) else ""))
            elif name in ("REDUCE", "NEWOBJ"):
                pop()
                fn = pop()
                if not _CALLABLE(fn):
                    raise _Stop(f"{name}: not callable")
                push(_Obj(fn.name if isinstance(fn, _Global) else ""))
            elif name == "NEWOBJ_EX":
                pop(), pop()
                cls = pop()
                if not _CALLABLE(cls):
                    raise _Stop("NEWOBJ_EX: not a class")
                push(_Obj(cls.name if isinstance(cls, _Global) else ""))
            elif name == "BUILD":
                pop()
                obj = top()
                if not _CALLABLE(obj):
                    raise _Stop("BUILD: object has no state to set")
                if isinstance(obj, _Obj) and obj.made_by in _INLINE_DATA:
                    run.unmodelled.append((op_start - base, f"{obj.made_by} reads array "
                                           "data from inside the stream"))
                    break
            elif name == "TUPLE":
                push(_Tuple(tuple(pop_mark())))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) - n < fence():
                    raise _Stop("stack underflow")
                items = tuple(stack[-n:])
                del stack[-n:]
                push(_Tuple(items))
            elif name in ("LIST", "DICT", "FROZENSET"):
                pop_mark()
                push(_Const(name.lower()))
            elif name in ("APPEND", "SETITEM", "APPENDS", "SETITEMS", "ADDITEMS"):
                if name == "APPEND":
                    pop()
                elif name == "SETITEM":
                    pop(), pop()
                elif not pop_mark():
                    top()  # C: nothing to add, so the target is never touched
                    continue
                target = top()
                want = {"APPEND": "list", "APPENDS": "list", "SETITEM": "dict",
                        "SETITEMS": "dict", "ADDITEMS": "set"}[name]
                if not (_CALLABLE(target) or target == _Const(want)):
                    raise _Stop(f"{name} on an object without {want} methods")
            elif name in ("PERSID", "BINPERSID"):
                if not (persistent or run.protocol_header
                        or (run.legacy_torch and run.pickles >= 3)):
                    raise _Stop("no persistent_load function was specified")
                if name == "PERSID":
                    push(_ANY)
                    continue
                pid = pop()
                if (isinstance(pid, _Tuple) and len(pid.items) >= 3
                        and isinstance(pid.items[2], _Str)):
                    run.storage_keys.add(pid.items[2].value)
                push(_ANY)
            elif name == "READONLY_BUFFER":
                top()
            else:  # pragma: no cover - every opcode in _OPS is handled above
                raise _Stop(f"unmodelled opcode {name}")
    except _Stop as e:
        run.error = str(e)
        run.error_at = op_start - base
    run.end = pos - base
    return run


def _memo_key(arg) -> int:
    if isinstance(arg, bytes):
        try:
            key = int(arg)
        except ValueError:
            raise _Stop("invalid memo key") from None
    else:
        key = int(arg)
    if key < 0:
        raise _Stop("negative memo key")
    return key


def _shown_arg(name: str, arg):
    """The argument as :mod:`pickletools` shows it (for the teaching views)."""
    if arg is None:
        return None
    if isinstance(arg, tuple):
        return " ".join(a.decode("utf-8", "replace") for a in arg)
    if isinstance(arg, _Bytes):
        return f"<{arg.size} bytes>"
    if isinstance(arg, bytes):
        if name in _TEXT_OPS:
            try:
                return arg.decode("raw-unicode-escape" if name == "UNICODE" else "utf-8",
                                  "surrogatepass" if name != "UNICODE" else "strict")
            except UnicodeDecodeError:
                return arg
        if name in ("INT", "LONG", "FLOAT", "PUT", "GET", "PERSID", "STRING"):
            text = arg.decode("latin-1")
            if name in ("PUT", "GET"):
                try:
                    return int(text)
                except ValueError:
                    return text
            return text
        if name in ("LONG1", "LONG4"):
            return int.from_bytes(arg, "little", signed=True)
        if name == "SHORT_BINSTRING" or name == "BINSTRING":
            return arg.decode("latin-1")
        return arg
    return arg

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

The machine only models the unpickler: one handler per opcode family (framing and
protocol, stack and memo, constants, containers, imports and objects), and a
:class:`PickleRun` of the :class:`Event` s a load would cause (imports, computed imports,
extension codes, parts it cannot follow). Which of those is suspicious is decided apart,
in :mod:`labkit.supplychain.rules` (fickling keeps its VM and its analyses apart the same
way).

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
from typing import Callable, NamedTuple

from .blob import Blob
from .findings import BudgetExceeded

__all__ = ["Event", "PickleRun", "run_pickle", "OPNAMES", "TORCH_MAGIC"]

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


class Event(NamedTuple):
    """Something a loader would do that the analysis (:mod:`.rules`) judges.

    ``kind`` is ``"import"`` (``detail``: the dotted name), ``"computed-import"`` (a
    ``STACK_GLOBAL`` whose name is only known at load time), ``"extension"`` (an ``EXT*``
    code) or ``"unmodelled"`` (``detail``: why the model stops following the stream);
    ``offset`` is the opcode's byte offset.
    """

    kind: str
    offset: int
    detail: str = ""


@dataclass
class PickleRun:
    """What the model saw in the pickles stacked at one offset of a blob.

    Attributes
    ----------
    events : list of Event
        In stream order: imports, computed imports, extension codes, unmodelled parts.
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

    events: list = field(default_factory=list)
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

    @property
    def imports(self) -> list[tuple[str, int]]:
        """``(name, offset)`` of every name a loader would import."""
        return [(e.detail, e.offset) for e in self.events if e.kind == "import"]

    @property
    def unknown(self) -> list[int]:
        """Offsets of ``STACK_GLOBAL`` opcodes whose name is computed at load time."""
        return [e.offset for e in self.events if e.kind == "computed-import"]

    @property
    def extensions(self) -> list[int]:
        """Offsets of ``EXT*`` opcodes."""
        return [e.offset for e in self.events if e.kind == "extension"]

    @property
    def unmodelled(self) -> list[tuple[int, str]]:
        """``(offset, why)`` where the model cannot follow the stream."""
        return [(e.offset, e.detail) for e in self.events if e.kind == "unmodelled"]


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


# --------------------------------------------------------------------------------------
# The machine: input, stack, mark stack and memo of one walk
# --------------------------------------------------------------------------------------


class _Machine:
    """The unpickler's state while walking one blob (``Unpickler`` in ``_pickle.c``)."""

    def __init__(self, blob: Blob, offset: int, *, max_line: int, follow: bool,
                 persistent: bool, trace: bool):
        self.blob, self.buf, self.base = blob, blob.buf, blob.start
        self.end = blob.start + blob.size
        self.pos = self.op_start = blob.start + offset
        self.max_line, self.follow, self.persistent = max_line, follow, persistent
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.run = PickleRun(trace=[] if trace else None)
        self.run.protocol_header = blob.size - offset >= 2 and self.buf[self.pos] == 0x80

    def event(self, kind: str, detail: str = "") -> None:
        """Record an event at the current opcode."""
        self.run.events.append(Event(kind, self.op_start - self.base, detail))

    # ---- the stack (Pdata in C: a mark is a fence that pops cannot cross) ------------

    def fence(self) -> int:
        return self.marks[-1] if self.marks else 0

    def pop(self):
        if len(self.stack) <= self.fence():
            raise _Stop("stack underflow")
        return self.stack.pop()

    def top(self):
        if len(self.stack) <= self.fence():
            raise _Stop("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.marks:
            raise _Stop("could not find MARK")
        m = self.marks.pop()
        items = self.stack[m:]
        del self.stack[m:]
        return items

    def push(self, v) -> None:
        if len(self.stack) >= _MAX_STACK:
            raise BudgetExceeded("pickle stack deeper than the scanner's budget")
        self.stack.append(v)

    # ---- reading arguments ------------------------------------------------------------

    def take(self, n: int) -> bytes:
        if n < 0:
            raise _Stop("negative length")
        if self.pos + n > self.end:
            raise _Stop("pickle data was truncated")
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def line(self) -> bytes:
        pos, end = self.pos, self.end
        limit = min(end, pos + self.max_line + 1)
        nl = self.buf.find(b"\n", pos, limit)
        if nl < 0:
            if limit < end:
                raise BudgetExceeded("a text argument longer than the scanner's budget")
            if pos >= end:
                raise _Stop("pickle data was truncated")
            data = bytes(self.buf[pos:end])  # pure-Python unpickler: readline()[:-1]
            self.pos = end
            return data[:-1]
        self.pos = nl + 1
        return bytes(self.buf[pos:nl])

    def big(self, n: int) -> _Bytes:
        """A byte-string argument: keep its head, skip the rest."""
        if n < 0:
            raise _Stop("negative length")
        if self.pos + n > self.end:
            raise _Stop("pickle data was truncated")
        head = bytes(self.buf[self.pos:self.pos + min(n, 16)])
        v = _Bytes(head, self.pos - self.base, n)
        self.pos += n
        return v

    def argument(self, kind: str):
        """Read the argument of an opcode of argument ``kind`` (see ``_OPS``)."""
        if kind in _FIXED:
            fmt, n = _FIXED[kind]
            return struct.unpack(fmt, self.take(n))[0]
        if kind in _SIZED:
            fmt, n = _SIZED[kind]
            size = struct.unpack(fmt, self.take(n))[0]
            return self.big(size) if size > _BIG else self.take(size)
        if kind == "line":
            return self.line()
        if kind == "line2":
            return (self.line(), self.line())
        return None


_FIXED = {"u1": ("<B", 1), "u2": ("<H", 2), "i4": ("<i", 4), "u4": ("<I", 4),
          "u8": ("<Q", 8), "f8": (">d", 8)}
_SIZED = {"n1": ("<B", 1), "n4": ("<I", 4), "s4": ("<i", 4), "n8": ("<Q", 8)}

# Each handler is ``handler(machine, opcode name, argument)``; it returns True when the
# walk ends there (a real load would return or hand over to other code).


# ---- framing and protocol -----------------------------------------------------------

def _proto(m: _Machine, name: str, arg) -> None:
    if arg > 5:
        raise _Stop(f"unsupported pickle protocol: {arg}")
    m.proto = arg


def _frame(m: _Machine, name: str, arg) -> None:
    """Frames only group opcodes; ignoring them over-approximates."""


def _stop(m: _Machine, name: str, arg) -> bool:
    run = m.run
    value = m.pop()
    run.pickles += 1
    if run.pickles == 1:
        run.legacy_torch = value == _Int(TORCH_MAGIC)
    if run.legacy_torch and run.pickles >= 5:
        return True  # torch reads raw storage bytes after its fifth pickle
    if not m.follow or m.pos >= m.end:
        return True
    m.stack.clear()  # the next load(): a reused Unpickler keeps its memo
    m.marks.clear()
    m.proto = 0
    return False


# ---- stack and memo -----------------------------------------------------------------

def _mark(m: _Machine, name: str, arg) -> None:
    m.marks.append(len(m.stack))


def _pop(m: _Machine, name: str, arg) -> None:
    if m.marks and m.marks[-1] == len(m.stack):
        m.marks.pop()  # C: POP on a mark pops the mark
    else:
        m.pop()


def _pop_mark(m: _Machine, name: str, arg) -> None:
    m.pop_mark()


def _dup(m: _Machine, name: str, arg) -> None:
    m.push(m.top())


def _put(m: _Machine, name: str, arg) -> None:
    key = _memo_key(arg)  # a bad key is reported before an empty stack
    m.memo[key] = m.top()


def _memoize(m: _Machine, name: str, arg) -> None:
    m.memo[len(m.memo)] = m.top()


def _get(m: _Machine, name: str, arg) -> None:
    key = _memo_key(arg)
    if key not in m.memo:
        raise _Stop(f"memo key {key} missing")
    m.push(m.memo[key])


# ---- constants: text, bytes, numbers, singletons, buffers ---------------------------

def _unicode(m: _Machine, name: str, arg) -> None:
    if isinstance(arg, _Bytes):
        m.push(_ANY)
        return
    try:
        text = (arg.decode("raw-unicode-escape") if name == "UNICODE"
                else arg.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        raise _Stop(f"{name}: undecodable text") from None
    m.push(_Str(text))


def _py2_string(m: _Machine, name: str, arg) -> None:
    if isinstance(arg, _Bytes):
        m.push(_ANY)
        return
    if name == "STRING":
        if len(arg) >= 2 and arg[:1] == arg[-1:] and arg[:1] in (b"'", b'"'):
            try:
                arg = codecs.escape_decode(arg[1:-1])[0]
            except ValueError:
                raise _Stop("STRING: bad escape") from None
        else:
            raise _Stop("the STRING opcode argument must be quoted")
    m.push(_text(arg))


def _bytes(m: _Machine, name: str, arg) -> None:
    value = arg if isinstance(arg, _Bytes) else _Bytes(arg[:16], m.pos - m.base - len(arg), len(arg))
    if value.size > 2 and value.head[0] == 0x80 and value.head[1] <= 5:
        m.run.nested.append(m.blob.sub(value.offset, value.size))
    m.push(value)


def _binint(m: _Machine, name: str, arg) -> None:
    m.push(_Int(arg))


def _long_bin(m: _Machine, name: str, arg) -> None:
    m.push(_Int(int.from_bytes(arg, "little", signed=True))
           if isinstance(arg, bytes) and len(arg) <= 64 else _ANY)


def _int_line(m: _Machine, name: str, arg) -> None:
    s = arg.strip()
    if name == "LONG" and s.endswith(b"L"):
        s = s[:-1]
    try:
        m.push(_Int(int(s, 0)))
    except ValueError:
        m.push(_ANY)  # strtol accepts more (leading zeros as octal, "5\0...")


def _const(m: _Machine, name: str, arg) -> None:
    m.push(_CONST[name])


def _empty_tuple(m: _Machine, name: str, arg) -> None:
    m.push(_Tuple(()))


def _push_any(m: _Machine, name: str, arg) -> None:
    m.push(_ANY)


def _readonly_buffer(m: _Machine, name: str, arg) -> None:
    m.top()


# ---- containers ---------------------------------------------------------------------

def _tuple(m: _Machine, name: str, arg) -> None:
    m.push(_Tuple(tuple(m.pop_mark())))


def _tuple_n(m: _Machine, name: str, arg) -> None:
    n = int(name[-1])
    if len(m.stack) - n < m.fence():
        raise _Stop("stack underflow")
    items = tuple(m.stack[-n:])
    del m.stack[-n:]
    m.push(_Tuple(items))


def _from_mark(m: _Machine, name: str, arg) -> None:
    m.pop_mark()
    m.push(_Const(name.lower()))


_ADDS_TO = {"APPEND": "list", "APPENDS": "list", "SETITEM": "dict", "SETITEMS": "dict",
            "ADDITEMS": "set"}


def _add_items(m: _Machine, name: str, arg) -> None:
    if name == "APPEND":
        m.pop()
    elif name == "SETITEM":
        m.pop(), m.pop()
    elif not m.pop_mark():
        m.top()  # C: nothing to add, so the target is never touched
        return
    target = m.top()
    want = _ADDS_TO[name]
    if not (_CALLABLE(target) or target == _Const(want)):
        raise _Stop(f"{name} on an object without {want} methods")


# ---- imports and objects ------------------------------------------------------------

def _found_class(m: _Machine, module: str, qual: str) -> str:
    """``find_class``: the name the loader imports (recorded before any call: importing
    a module runs its code even if nothing is called afterwards)."""
    module, qual = _import_name(module, qual, m.proto)
    if not _importable(module):
        raise _Stop(f"No module named {module!r}")
    m.event("import", f"{module}.{qual}")
    return f"{module}.{qual}"


def _global(m: _Machine, name: str, arg) -> None:
    # C's INST looks for the MARK first, pickle._Unpickler imports first:
    # the import is recorded either way.
    mod_raw, qual_raw = arg
    if not mod_raw or not qual_raw:
        raise _Stop("bad readline")  # C: a line of at least one char
    try:
        module, qual = mod_raw.decode("utf-8"), qual_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Stop(f"{name}: name is not UTF-8") from None
    found = _found_class(m, module, qual)
    if name == "INST":
        m.pop_mark()
        m.push(_Obj(found))
    else:
        m.push(_Global(found))


def _stack_global(m: _Machine, name: str, arg) -> None:
    qual, module = m.pop(), m.pop()
    if isinstance(module, _Str) and isinstance(qual, _Str):
        m.push(_Global(_found_class(m, module.value, qual.value)))
    elif isinstance(module, (_Bytes, _Int, _Tuple)) or isinstance(qual, (_Bytes, _Int, _Tuple)):
        raise _Stop("STACK_GLOBAL requires str")
    else:
        m.event("computed-import")
        m.push(_Global(""))


def _ext(m: _Machine, name: str, arg) -> None:
    if arg <= 0:
        raise _Stop("EXT specifies code <= 0")
    if not (m.run.protocol_header or m.run.pickles):
        # the standard library registers no extension codes: a loader fails here unless
        # its program called copyreg.add_extension; reported only in streams that are
        # pickles by their header
        raise _Stop("unregistered extension code")
    m.event("extension")
    m.push(_Global(""))


def _made_by(fn) -> str:
    return fn.name if isinstance(fn, _Global) else ""


def _obj(m: _Machine, name: str, arg) -> None:
    items = m.pop_mark()
    if not items or not _CALLABLE(items[0]):
        raise _Stop("OBJ without a class")
    m.push(_Obj(_made_by(items[0])))


def _reduce(m: _Machine, name: str, arg) -> None:
    m.pop()
    fn = m.pop()
    if not _CALLABLE(fn):
        raise _Stop(f"{name}: not callable")
    m.push(_Obj(_made_by(fn)))


def _newobj_ex(m: _Machine, name: str, arg) -> None:
    m.pop(), m.pop()
    cls = m.pop()
    if not _CALLABLE(cls):
        raise _Stop("NEWOBJ_EX: not a class")
    m.push(_Obj(_made_by(cls)))


def _build(m: _Machine, name: str, arg) -> bool:
    m.pop()
    obj = m.top()
    if not _CALLABLE(obj):
        raise _Stop("BUILD: object has no state to set")
    if isinstance(obj, _Obj) and obj.made_by in _INLINE_DATA:
        m.event("unmodelled", f"{obj.made_by} reads array data from inside the stream")
        return True
    return False


def _persid(m: _Machine, name: str, arg) -> None:
    run = m.run
    if not (m.persistent or run.protocol_header or (run.legacy_torch and run.pickles >= 3)):
        raise _Stop("no persistent_load function was specified")
    if name == "PERSID":
        m.push(_ANY)
        return
    pid = m.pop()
    if isinstance(pid, _Tuple) and len(pid.items) >= 3 and isinstance(pid.items[2], _Str):
        run.storage_keys.add(pid.items[2].value)
    m.push(_ANY)


_HANDLERS: dict[str, Callable] = {
    # framing and protocol
    "PROTO": _proto, "FRAME": _frame, "STOP": _stop,
    # stack and memo
    "MARK": _mark, "POP": _pop, "POP_MARK": _pop_mark, "DUP": _dup,
    "PUT": _put, "BINPUT": _put, "LONG_BINPUT": _put, "MEMOIZE": _memoize,
    "GET": _get, "BINGET": _get, "LONG_BINGET": _get,
    # constants
    **{n: _unicode for n in _TEXT_OPS}, **{n: _py2_string for n in _PY2_OPS},
    **{n: _bytes for n in _BYTES_OPS},
    "BININT": _binint, "BININT1": _binint, "BININT2": _binint,
    "LONG1": _long_bin, "LONG4": _long_bin, "INT": _int_line, "LONG": _int_line,
    **{n: _const for n in _CONST}, "EMPTY_TUPLE": _empty_tuple,
    **{n: _push_any for n in _PUSH_ANY}, "READONLY_BUFFER": _readonly_buffer,
    # containers
    "TUPLE": _tuple, "TUPLE1": _tuple_n, "TUPLE2": _tuple_n, "TUPLE3": _tuple_n,
    "LIST": _from_mark, "DICT": _from_mark, "FROZENSET": _from_mark,
    **{n: _add_items for n in _ADDS_TO},
    # imports and objects
    "GLOBAL": _global, "INST": _global, "STACK_GLOBAL": _stack_global,
    "EXT1": _ext, "EXT2": _ext, "EXT4": _ext, "OBJ": _obj,
    "REDUCE": _reduce, "NEWOBJ": _reduce, "NEWOBJ_EX": _newobj_ex, "BUILD": _build,
    "PERSID": _persid, "BINPERSID": _persid,
}
assert set(_HANDLERS) == OPNAMES, "every opcode in _OPS has one handler"


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
        The events a loader would cause; :func:`labkit.supplychain.rules.pickle_findings`
        judges them.
    """
    m = _Machine(blob, offset, max_line=max_line, follow=follow, persistent=persistent,
                 trace=trace)
    run = m.run
    try:
        while True:
            m.op_start = m.pos
            if m.pos >= m.end:
                raise _Stop("ran out of input before STOP")
            code = m.buf[m.pos]
            m.pos += 1
            spec = _OPS.get(code)
            if spec is None:
                raise _Stop(f"invalid load key {bytes([code])!r}")
            name, kind = spec
            if limit is not None and run.ops >= limit:
                m.pos = m.op_start
                break
            run.ops += 1
            if max_ops is not None and run.ops > max_ops:
                raise BudgetExceeded("more pickle opcodes than the scanner's budget")
            arg = m.argument(kind)
            if run.trace is not None:
                run.trace.append((m.op_start - m.base, name, _shown_arg(name, arg)))
            if _HANDLERS[name](m, name, arg):
                break
    except _Stop as e:
        run.error = str(e)
        run.error_at = m.op_start - m.base
    run.end = m.pos - m.base
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

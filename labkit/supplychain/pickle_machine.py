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
* the mark stack and its "fence" as in C (``POP`` on a mark pops the mark;
  ``do_append``/``do_setitems`` find their target just below the items);
* the lenient cases: ``BUILD`` with any state on any object, ``SETITEM(S)``/
  ``APPEND(S)``/``ADDITEMS`` on whatever is there (a bytearray, an object with its own
  ``__setitem__``: a ``method`` event), ``EXT`` codes (copyreg's registry: always an
  event), module names that are not identifiers but that the importer can still resolve
  (``"my-helper"``: an import event once the stream goes on);
* every ``GLOBAL``/``STACK_GLOBAL``/``INST`` import is recorded *before* any call: importing
  a module runs its code even if nothing is called afterwards;
* a stream without ``STOP`` is walked to its end (everything before the error ran);
* after ``STOP`` the next pickle is walked too (loaders call ``load`` repeatedly: torch's
  legacy format stacks five pickles) with a fresh memo, and again with the memo kept (a
  reused ``Unpickler``) when the two readings can differ;
* a torch legacy file (first pickle = torch's magic number) ends after its fifth pickle:
  what follows is raw storage bytes that torch never unpickles.

Wherever the model stops, the stop mirrors an error the real unpickler raises there
(``tests/test_pickle_differential.py`` checks that against both CPython unpicklers);
:mod:`.rules` turns a stop part-way through a pickle into a finding.

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
class _Bytes:
    head: bytes
    offset: int  # where the bytes start (relative to the blob)
    size: int


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass(frozen=True)
class _Obj:
    made_by: str  # the name of the callable/class, "" when unknown
    # a numpy dtype's [type code, BUILD state] (joblib's inline arrays need its item size)
    info: object = field(default=None, compare=False)


class _StateDict(dict):
    """The state dict of a joblib array wrapper, its ``str`` keys and values kept: the
    wrapper's ``BUILD`` reads ``shape * itemsize`` bytes of array data from the stream."""


@dataclass(frozen=True)
class _Const:
    kind: str  # none, bool, int, float, list, dict, set, frozenset: never callable, never str


# Values on the model's stack: ``str`` (text), ``int`` (a LONG1/LONG4 value), ``tuple``,
# :class:`_Bytes`, :class:`_Global` (an imported name), :class:`_Obj` (a call's result),
# :class:`_Const` (a value whose content never matters) and ``_ANY`` (unknown).
_NONE, _BOOL, _INT, _FLOAT = _Const("none"), _Const("bool"), _Const("int"), _Const("float")
_LIST, _DICT, _SET = _Const("list"), _Const("dict"), _Const("set")
_CONST = {"NONE": _NONE, "NEWTRUE": _BOOL, "NEWFALSE": _BOOL, "BINFLOAT": _FLOAT,
          "FLOAT": _FLOAT, "EMPTY_LIST": _LIST, "EMPTY_DICT": _DICT, "EMPTY_SET": _SET}


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<any>"


_ANY = _Any()
_MISSING = object()


def _callable(v) -> bool:
    return isinstance(v, (_Global, _Obj, _Any))


class Event(NamedTuple):
    """Something a loader would do that the analysis (:mod:`.rules`) judges.

    ``kind`` is ``"import"`` (``detail``: the dotted name), ``"computed-import"`` (a
    ``STACK_GLOBAL`` whose name is only known at load time), ``"extension"`` (an ``EXT*``
    code: a name from copyreg's registry), ``"method"`` (``BUILD``, ``SETITEM(S)``,
    ``APPEND(S)`` or ``ADDITEMS`` calling a method of an object that is not a plain
    dict/list/set: ``detail`` is ``"OPCODE on NAME"``, ``NAME`` the callable that made the
    object, ``""`` when unknown) or ``"unmodelled"`` (``detail``: why the model stops
    following the stream); ``offset`` is the opcode's byte offset.
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
        In stream order: imports, computed imports, extension codes, method calls,
        unmodelled parts.
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
    error_first_op : bool
        The failing pickle failed at its first opcode (a loader that reads it runs
        nothing of it: bytes after a ``STOP`` that are not a pickle).
    protocol_header : bool
        The first pickle starts with a ``PROTO`` opcode.
    legacy_torch : bool
        The stream is a torch legacy checkpoint (magic number first).
    end : int
        Offset after the last opcode read.
    result : object
        The first pickle's value as the model knows it (``None`` before a ``STOP``).
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
    error_first_op: bool = False
    protocol_header: bool = False
    legacy_torch: bool = False
    end: int = 0
    result: object = None
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


def module_status(module: str) -> str:
    """How ``__import__(module)`` can go: ``"name"`` (dotted identifiers: any installed
    module), ``"odd"`` (not an identifier, yet importable: a key of ``sys.modules``, or a
    file or folder of that name on ``sys.path``, e.g. ``"my-helper"`` or ``"a b"`` shipped
    next to the model), ``"never"`` (the importer always raises: empty, an empty dotted
    part, a NUL or a slash)."""
    parts = module.split(".")
    if all(p.isidentifier() for p in parts):
        return "name"
    if not all(parts) or "\x00" in module or "/" in module:
        return "never"
    return "odd"


def _text(raw: bytes) -> object:
    """Python 2 STRING payload as a loader decodes it (ASCII by default, UTF-8 in torch,
    latin-1 or bytes when asked)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------------------
# The machine: input, stack, mark stack and memo of one walk
# --------------------------------------------------------------------------------------


class _Machine:
    """The unpickler's state while walking one blob (``Unpickler`` in ``_pickle.c``)."""

    def __init__(self, blob: Blob, offset: int, *, max_line: int, follow: bool,
                 persistent: bool, trace: bool, keep_memo: bool, max_ops: int | None = None,
                 inline_arrays: bool = True):
        self.blob, self.buf, self.base = blob, blob.buf, blob.start
        self.end = blob.start + blob.size
        self.pos = self.op_start = self.pickle_start = blob.start + offset
        self.max_line, self.follow, self.persistent = max_line, follow, persistent
        self.keep_memo, self.max_ops = keep_memo, max_ops
        # joblib's unpickler reads array data after its wrappers' BUILD; the plain
        # unpickler it runs on an object array's nested pickle does not
        self.inline_arrays = inline_arrays
        self.frame_end = -1
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.pending: list[Event] = []  # tentative events (see _tentative)
        self.pending_at = -1
        self.memo_across = False  # a later pickle follows one that used the memo
        self.run = PickleRun(trace=[] if trace else None)
        self.run.protocol_header = blob.size - offset >= 2 and self.buf[self.pos] == 0x80

    def event(self, kind: str, detail: str = "") -> None:
        """Record an event at the current opcode."""
        self.run.events.append(Event(kind, self.op_start - self.base, detail))

    def tentative(self, kind: str, detail: str = "") -> None:
        """An event that counts only if the stream goes on: in a stream with no protocol
        header and no earlier ``STOP``, an odd module name followed by an error is text or
        data that happens to start like an opcode (``"channels: 3"``
        reads as ``GLOBAL 'hannels: 3'``), not a pickle."""
        run = self.run
        if run.protocol_header or run.pickles:
            self.event(kind, detail)
        else:
            self.pending.append(Event(kind, self.op_start - self.base, detail))
            self.pending_at = self.op_start

    def flush(self) -> None:
        self.run.events.extend(self.pending)
        self.pending.clear()

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

    def marker(self) -> int:
        """Pop the last mark (C ``marker()``): where its items start."""
        if not self.marks:
            raise _Stop("could not find MARK")
        return self.marks.pop()

    def pop_mark(self) -> list:
        m = self.marker()
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
    """Frames only group opcodes; ignoring them over-approximates. Where the frame ends
    matters to joblib alone (its array data is read from the file, past the frame)."""
    m.frame_end = m.pos + arg


def _stop(m: _Machine, name: str, arg) -> bool:
    run = m.run
    value = m.pop()
    run.pickles += 1
    if run.pickles == 1:
        run.result = value
        run.legacy_torch = value == TORCH_MAGIC and type(value) is int
    m.flush()
    if run.legacy_torch and run.pickles >= 5:
        return True  # torch reads raw storage bytes after its fifth pickle
    if not m.follow or m.pos >= m.end:
        return True
    # the next load(): ``pickle.load`` called again (torch's legacy reader, a loop until
    # EOF) starts a fresh Unpickler with an empty memo; a reused Unpickler keeps it
    # (run_pickle walks that reading too when it can differ)
    m.stack.clear()
    m.marks.clear()
    m.proto = 0
    if m.memo:
        m.memo_across = True
        if not m.keep_memo:
            m.memo = {}
    m.pickle_start = m.pos
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
    v = m.memo.get(key, _MISSING)
    if v is _MISSING:
        raise _Stop(f"memo key {key} missing")
    m.push(v)


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
    m.push(text)


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
    m.push(arg)


def _long_bin(m: _Machine, name: str, arg) -> None:
    m.push(int.from_bytes(arg, "little", signed=True)
           if isinstance(arg, bytes) and len(arg) <= 64 else _INT)


def _int_line(m: _Machine, name: str, arg) -> None:
    m.push(_INT)  # strtol/int(x, 0) accept more than pickletools; the value never matters


def _const(m: _Machine, name: str, arg) -> None:
    if name == "EMPTY_DICT" and _wraps_array(m):
        m.push(_StateDict())
        return
    m.push(_CONST[name])


def _wraps_array(m: _Machine) -> bool:
    """The dict about to be pushed is a joblib array wrapper's state."""
    top = m.stack[-1] if len(m.stack) > m.fence() else None
    return m.inline_arrays and type(top) is _Obj and top.made_by in _INLINE_DATA


def _empty_tuple(m: _Machine, name: str, arg) -> None:
    m.push(())


def _push_any(m: _Machine, name: str, arg) -> None:
    m.push(_ANY)


def _readonly_buffer(m: _Machine, name: str, arg) -> None:
    m.top()


# ---- containers ---------------------------------------------------------------------

def _tuple(m: _Machine, name: str, arg) -> None:
    m.push(tuple(m.pop_mark()))


def _tuple_n(m: _Machine, name: str, arg) -> None:
    n = int(name[-1])
    if len(m.stack) - n < m.fence():
        raise _Stop("stack underflow")
    items = tuple(m.stack[-n:])
    del m.stack[-n:]
    m.push(items)


def _from_mark(m: _Machine, name: str, arg) -> None:
    m.pop_mark()
    m.push(_Const(name.lower()))


_ADDS_TO = {"APPEND": _LIST, "APPENDS": _LIST, "SETITEM": _DICT, "SETITEMS": _DICT,
            "ADDITEMS": _SET}


def _method_on(m: _Machine, name: str, target) -> None:
    """What ``name`` does to ``target``: a plain container is filled in place; bytes,
    text, numbers and tuples are left alone or make the load fail (either way nothing
    runs); anything made by an import may run its own ``__setitem__``/``extend``/
    ``append``/``add``/``__setstate__``: a method call (CPython calls whatever the
    object has; torch's weights-only unpickler did too, CVE-2026-24747)."""
    if isinstance(target, _Obj):
        m.event("method", f"{name} on an object made by {target.made_by or '?'}")
    elif isinstance(target, _Global):
        m.event("method", f"{name} on {target.name or '?'} itself")
    elif isinstance(target, _Any):
        m.event("method", f"{name} on an object of unknown type")


def _add_items(m: _Machine, name: str, arg) -> None:
    """``_pickle.c`` ``do_append``/``do_setitems``/``load_additems``: the target sits just
    below the items; with nothing to add it is never touched."""
    stack = m.stack
    if name in ("APPEND", "SETITEM"):
        n = 1 if name == "APPEND" else 2
        if len(stack) - n <= m.fence():
            raise _Stop("stack underflow")
        x = len(stack) - n
    else:
        x = m.marker()
    if x > len(stack) or x <= 0:
        raise _Stop("stack underflow")
    if x == len(stack):
        return
    target = stack[x - 1]
    if type(target) is _StateDict and name in ("SETITEM", "SETITEMS"):
        target.update((k, v) for k, v in zip(stack[x::2], stack[x + 1::2]) if type(k) is str)
    elif target is not _ADDS_TO[name]:
        _method_on(m, name, target)
    odd = name in ("SETITEM", "SETITEMS") and (len(stack) - x) % 2
    del stack[x:]
    if odd:
        raise _Stop(f"odd number of items for {name}")


# ---- imports and objects ------------------------------------------------------------

def _found_class(m: _Machine, module: str, qual: str) -> str:
    """``find_class``: the name the loader imports (recorded before any call: importing
    a module runs its code even if nothing is called afterwards)."""
    module, qual = _import_name(module, qual, m.proto)
    status = module_status(module)
    if status == "never":
        raise _Stop(f"No module named {module!r}")
    if status == "odd":
        m.tentative("import", f"{module}.{qual}")
    else:
        m.event("import", f"{module}.{qual}")
    return f"{module}.{qual}"


def _global(m: _Machine, name: str, arg) -> None:
    # C's INST looks for the MARK first, pickle._Unpickler imports first:
    # the import is recorded either way.
    mod_raw, qual_raw = arg
    try:
        module, qual = mod_raw.decode("utf-8"), qual_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Stop(f"{name}: name is not UTF-8") from None
    if not module:
        raise _Stop("bad readline")  # C: a line of at least one char
    found = _found_class(m, module, qual)  # pickle.py imports before it looks up ""
    if not qual:
        raise _Stop("bad readline")
    if name == "INST":
        m.pop_mark()
        m.push(_Obj(found))
    else:
        m.push(_Global(found))


def _stack_global(m: _Machine, name: str, arg) -> None:
    qual, module = m.pop(), m.pop()
    if type(module) is str and type(qual) is str:
        if not module:
            raise _Stop("Empty module name")
        m.push(_Global(_found_class(m, module, qual)))
    elif not (type(module) is str or _callable(module)) or not (
            type(qual) is str or _callable(qual)):
        raise _Stop("STACK_GLOBAL requires str")  # a literal of another type
    else:
        # a call's result or a GLOBAL's value (``os.sep`` is a str) may be a str
        m.event("computed-import", f"{module}.?" if type(module) is str else "")
        m.push(_Global(""))


def _ext(m: _Machine, name: str, arg) -> None:
    """``copyreg``'s extension registry maps the code to a (module, name) a program
    registered with ``copyreg.add_extension``; the standard library registers none, so
    a plain ``pickle.load`` fails here. Which name it is cannot be known statically, and
    a loading program that registered codes imports it even if the stream then breaks:
    always an event."""
    if arg <= 0:
        raise _Stop("EXT specifies code <= 0")
    m.event("extension", str(arg))
    m.push(_Global(""))


def _made_by(fn) -> str:
    return fn.name if isinstance(fn, _Global) else ""


def _obj(m: _Machine, name: str, arg) -> None:
    items = m.pop_mark()
    if not items:
        raise _Stop("stack underflow")
    if not _callable(items[0]):
        raise _Stop("OBJ: not a class")
    m.push(_Obj(_made_by(items[0])))


def _reduce(m: _Machine, name: str, arg) -> None:
    args = m.pop()
    fn = m.pop()
    if not _callable(fn):
        raise _Stop(f"{name}: not callable")
    made_by = _made_by(fn)
    if made_by == "numpy.dtype" and type(args) is tuple and args and type(args[0]) is str:
        m.push(_Obj(made_by, [args[0], None]))   # numpy.dtype('f8', False, True)
        return
    m.push(_Obj(made_by))


def _newobj_ex(m: _Machine, name: str, arg) -> None:
    m.pop(), m.pop()
    cls = m.pop()
    if not _callable(cls):
        raise _Stop("NEWOBJ_EX: not a class")
    m.push(_Obj(_made_by(cls)))


def _build(m: _Machine, name: str, arg) -> bool:
    """``load_build``: ``__setstate__`` when the object has one (a call), else the state
    updates ``__dict__``/slots; a ``None`` or empty state on anything is a no-op. The
    model never stops here: it records the call on objects made by imports."""
    state = m.pop()
    obj = m.top()
    if m.inline_arrays and isinstance(obj, _Obj) and obj.made_by in _INLINE_DATA:
        why = _inline_array(m, state)
        if why:
            m.event("unmodelled", f"{obj.made_by} reads array data from inside the stream "
                                  f"({why})")
            return True
        return False
    if isinstance(obj, _Obj) and type(obj.info) is list and type(state) is tuple:
        obj.info[1] = state   # a numpy dtype's (version, byte order, ..., elsize, ...)
    _method_on(m, name, obj)  # rules: fine on objects of allowed types
    return False


_FIXED_SIZE = set("biufcmM")   # numpy kinds whose type code ends in the item size


def _itemsize(dtype) -> int | None:
    """The item size numpy gives ``dtype`` (a ``numpy.dtype`` object of the model), or
    ``None`` when the model cannot tell. As ``arraydescr_setstate`` does: a fixed-size code
    (``'f8'``, ``'<i4'``) has the size its digits say, whatever the BUILD state's ``elsize``;
    strings, unicode and records (``'U'``, ``'S'``, ``'V'``) take ``elsize`` from the state."""
    if not (isinstance(dtype, _Obj) and dtype.made_by == "numpy.dtype" and type(dtype.info) is list):
        return None
    code, state = dtype.info
    code = code.lstrip("<>|=")
    if code[:1] in _FIXED_SIZE:
        return int(code[1:]) if code[1:].isdigit() else None
    if code[:1] in ("U", "S", "V") and type(state) is tuple and len(state) > 5 \
            and type(state[5]) is int and state[5] > 0:
        return state[5]
    return None


def _inline_array(m: _Machine, state) -> str:
    """``NumpyArrayWrapper.read_array`` after joblib's ``load_build``: skip the array's
    bytes (an alignment byte, its padding, ``shape * itemsize``) or, for an object array,
    walk the nested pickle joblib reads with a plain unpickler. Returns ``""`` when it was
    followed (the wrapper becomes an array), else why not (the caller stops there)."""
    if type(state) is not _StateDict:
        return "state not a plain dict"
    if m.frame_end > m.pos:   # joblib reads past the frame; the unpickler inside it
        return "array data inside a pickle frame"
    shape, dtype = state.get("shape"), state.get("dtype")
    if not (type(shape) is tuple and all(type(d) is int and d >= 0 for d in shape)):
        return "shape not known"
    code = dtype.info[0].lstrip("<>|=") if isinstance(dtype, _Obj) and type(dtype.info) is list else ""
    if code.startswith("O"):
        sub, _ = _walk(m.blob, m.pos - m.base, max_line=m.max_line, max_ops=m.max_ops,
                       trace=False, follow=False, limit=None, persistent=False,
                       keep_memo=False, inline_arrays=False)
        m.run.events.extend(sub.events)
        m.run.nested.extend(sub.nested)
        if sub.error is not None:
            raise _Stop(f"object array: {sub.error}")
        m.pos = m.base + sub.end
    else:
        size = _itemsize(dtype)
        if size is None:
            return "item size not known"
        align = state.get("numpy_array_alignment_bytes")   # absent or None: no padding
        if align is not None and type(align) is not int:
            return "alignment not known"
        skip = 0
        if align is not None:
            if m.pos >= m.end:
                raise _Stop("ran out of input in array padding")
            skip = 1 + m.buf[m.pos]
        count = 1
        for d in shape:
            count *= d
        if m.pos + skip + count * size > m.end:
            raise _Stop("ran out of input in array data")
        m.pos += skip + count * size
    m.stack[-1] = _Obj("numpy.ndarray")
    return ""


def _persid(m: _Machine, name: str, arg) -> None:
    run = m.run
    if not (m.persistent or run.protocol_header or (run.legacy_torch and run.pickles >= 3)):
        raise _Stop("no persistent_load function was specified")
    if name == "PERSID":
        m.push(_ANY)
        return
    pid = m.pop()
    if isinstance(pid, tuple) and len(pid) >= 3 and type(pid[2]) is str:
        run.storage_keys.add(pid[2])
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

# byte -> (name, argument kind, handler): one look-up per opcode
_TABLE: list = [None] * 256
for _code, (_name, _kind) in _OPS.items():
    _TABLE[_code] = (_name, _kind, _HANDLERS[_name])


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
        judges them. Pickles after the first are read with a fresh memo (``pickle.load``
        called again); when a reused ``Unpickler`` (memo kept) could read them
        differently, that reading is walked too and its events are added.
    """
    kw = dict(max_line=max_line, max_ops=max_ops, trace=trace, follow=follow, limit=limit,
              persistent=persistent)
    run, across = _walk(blob, offset, keep_memo=False, **kw)
    if across and follow and limit is None:
        other, _ = _walk(blob, offset, keep_memo=True, **dict(kw, trace=False))
        seen = set(run.events)
        run.events.extend(e for e in other.events if e not in seen)
        run.events.sort(key=lambda e: e.offset)
        run.nested.extend(b for b in other.nested
                          if all(b.start != n.start for n in run.nested))
        run.storage_keys |= other.storage_keys
    return run


def _walk(blob: Blob, offset: int, *, max_line, max_ops, trace, follow, limit, persistent,
          keep_memo, inline_arrays=True) -> tuple[PickleRun, bool]:
    m = _Machine(blob, offset, max_line=max_line, follow=follow, persistent=persistent,
                 trace=trace, keep_memo=keep_memo, max_ops=max_ops,
                 inline_arrays=inline_arrays)
    run = m.run
    buf, end, stack, marks = m.buf, m.end, m.stack, m.marks
    push = stack.append
    pending = m.pending
    fast = not trace
    table = _TABLE
    cap = min(x for x in (limit, max_ops, 1 << 62) if x is not None)
    ops = 0
    pos = m.pos
    try:
        while True:
            if pos >= end:
                m.op_start = m.pos = pos
                raise _Stop("ran out of input before STOP")
            code = buf[pos]
            if ops >= cap:
                m.pos = m.op_start = pos
                if limit is not None and ops >= limit:
                    break
                raise BudgetExceeded("more pickle opcodes than the scanner's budget")
            ops += 1
            if fast:
                # the opcodes of large ordinary pickles, inline (same semantics as their
                # handlers; anything unusual falls through to the handler)
                if code == 0x4B and pos + 2 <= end:  # BININT1
                    push(buf[pos + 1])
                    pos += 2
                elif code == 0x47 and pos + 9 <= end:  # BINFLOAT
                    push(_FLOAT)
                    pos += 9
                elif code == 0x8C and pos + 2 <= end:  # SHORT_BINUNICODE
                    n = buf[pos + 1]
                    if pos + 2 + n > end:
                        code = -1
                    else:
                        try:
                            push(bytes(buf[pos + 2:pos + 2 + n]).decode("utf-8", "surrogatepass"))
                            pos += 2 + n
                        except UnicodeDecodeError:
                            code = -1
                elif code == 0x94 and len(stack) > (marks[-1] if marks else 0):  # MEMOIZE
                    memo = m.memo
                    memo[len(memo)] = stack[-1]
                    pos += 1
                elif code == 0x4D and pos + 3 <= end:  # BININT2
                    push(buf[pos + 1] | buf[pos + 2] << 8)
                    pos += 3
                elif code == 0x68 and pos + 2 <= end and buf[pos + 1] in m.memo:  # BINGET
                    push(m.memo[buf[pos + 1]])
                    pos += 2
                elif code == 0x71 and pos + 2 <= end and len(stack) > (marks[-1] if marks else 0):
                    m.memo[buf[pos + 1]] = stack[-1]  # BINPUT
                    pos += 2
                elif code == 0x28:  # MARK
                    marks.append(len(stack))
                    pos += 1
                elif code == 0x5D:  # EMPTY_LIST
                    push(_LIST)
                    pos += 1
                elif code == 0x7D:  # EMPTY_DICT
                    push(_StateDict() if stack and type(stack[-1]) is _Obj and
                         stack[-1].made_by in _INLINE_DATA and _wraps_array(m) else _DICT)
                    pos += 1
                elif code == 0x4E:  # NONE
                    push(_NONE)
                    pos += 1
                elif code == 0x88 or code == 0x89:  # NEWTRUE, NEWFALSE
                    push(_BOOL)
                    pos += 1
                elif code == 0x95 and pos + 9 <= end:  # FRAME
                    pos += 9
                    m.frame_end = pos + int.from_bytes(buf[pos - 8:pos], "little")
                else:
                    code = -1
                if code >= 0:
                    if pending:
                        m.flush()
                    if not ops & 0xFFF and len(stack) >= _MAX_STACK:
                        raise BudgetExceeded("pickle stack deeper than the scanner's budget")
                    continue
                code = buf[pos]
            m.op_start = pos
            m.pos = pos + 1
            spec = table[code]
            if spec is None:
                raise _Stop(f"invalid load key {bytes([code])!r}")
            name, kind, handler = spec
            arg = m.argument(kind)
            if run.trace is not None:
                run.trace.append((pos - m.base, name, _shown_arg(name, arg)))
            done = handler(m, name, arg)
            if pending and m.pending_at != pos:
                m.flush()
            pos = m.pos
            if done:
                break
    except _Stop as e:
        run.error = str(e)
        run.error_at = m.op_start - m.base
        run.error_first_op = m.op_start == m.pickle_start
        pending.clear()
    run.ops = ops
    run.end = m.pos - m.base
    if run.error is None and pending:
        m.flush()
    return run, m.memo_across


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

"""The scanner's rules, as tables: what a reading may use without a finding, and which
event of a reading becomes which finding.

The readers only report what a loader would do (:mod:`.pickle_machine` models the
unpickler and records its events; :mod:`.configs` lists ``_target_`` values and resolver
calls); this module alone decides what is suspicious:

* :data:`DEFAULT_ALLOW`: globals a pickle may import (what ``torch.load(weights_only=True)``
  accepts, plus numpy's array pickles);
* :data:`SAFE_RESOLVERS`: OmegaConf resolvers that only read;
* :data:`PICKLE_RULES`: pickle machine event -> finding kind and detail
  (:func:`pickle_findings` applies them);
* :func:`global_allowed`, :func:`target_allowed`, :func:`resolver_allowed`: the
  allow-list decisions (exact names only: no prefixes, no wildcards).

References
----------
PyTorch docs, ``torch.load`` and ``weights_only``; ``torch._weights_only_unpickler``
(torch 2.14). picklescan keeps its rules the same way: tables apart from its reader.

See Also
--------
labkit.supplychain.scanner
"""

from __future__ import annotations

import re
from typing import Iterable

from .findings import shown

__all__ = ["DEFAULT_ALLOW", "SAFE_RESOLVERS", "PICKLE_RULES", "FILLABLE", "pickle_findings",
           "global_allowed", "target_allowed", "resolver_allowed"]

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
# joblib's array wrapper: the scanner follows the array data its loader reads after it
_JOBLIB = ["joblib.numpy_pickle.NumpyArrayWrapper"]

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
    + _JOBLIB
)
"""Globals a pickle may import without a finding: ordinary PyTorch checkpoints (the
names ``torch.load(weights_only=True)`` accepts in torch 2.14) and numpy arrays."""

SAFE_RESOLVERS: frozenset[str] = frozenset(
    ["oc.env", "oc.select", "oc.deprecated", "oc.dict.keys", "oc.dict.values", "hydra", "now"])
"""OmegaConf/Hydra resolvers that only read (another node, an environment variable, Hydra's
own run-time config, the clock). ``oc.create`` and ``oc.decode`` build nodes from strings
(a ``_target_`` can appear at resolve time), and any other resolver is code the loading
program registered (``eval`` is a common one): those are findings unless passed to
``allow``. ``oc.env`` is read-only but copies the environment into the config; a
``_target_`` taken from it is still a finding (it is not an exact allowed name)."""


# --------------------------------------------------------------------------------------
# Pickles: the machine's events -> findings
# --------------------------------------------------------------------------------------

PICKLE_RULES: dict[str, tuple[str, str]] = {
    "import": ("global", "imports {name} (byte {byte})"),
    "computed-import": ("unknown-global", "STACK_GLOBAL with a computed name (byte {byte})"),
    "extension": ("extension", "EXT opcode {detail}: a name from the copyreg registry "
                               "(byte {byte})"),
    "method": ("method-call", "{detail}: calls that object's own method (byte {byte})"),
    "unmodelled": ("unmodelled", "{detail}; the rest of the stream is not checked (byte {byte})"),
}
"""Event of :func:`~labkit.supplychain.pickle_machine.run_pickle` -> (finding kind, detail
template). An ``import`` is a finding unless :func:`global_allowed`; a ``method`` call
unless :func:`method_allowed`; every other event is always one (the name is unknown, or
the rest of the stream is). Findings come out in this table's order, each kind in stream
order."""

FILLABLE: frozenset[str] = frozenset(
    ["collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.dict",
     "builtins.list", "builtins.bytearray", "builtins.frozenset"])
"""Allowed names whose objects ``SETITEM(S)``/``APPEND(S)``/``ADDITEMS`` may fill (plain
containers). Any other object's ``__setitem__``/``append``/``extend``/``add`` is its own
code: a tensor's ``__setitem__`` in torch's weights-only unpickler was CVE-2026-24747."""

_METHOD = re.compile(r"^(\w+) on an object made by (.+)$")


def method_allowed(detail: str, allow: Iterable[str]) -> bool:
    """May a pickle call this method (a ``method`` event's detail)? ``BUILD`` (the
    ``__setstate__`` or ``__dict__`` update that rebuilds every ordinary object) on an
    object of an allowed type; the container opcodes on an allowed plain container. Never
    on a class, function or module itself (``BUILD`` there sets attributes of the
    imported object: monkey-patching), nor on an object of unknown type."""
    m = _METHOD.match(detail)
    if not m or m.group(2) == "?" or not global_allowed(m.group(2), allow):
        return False
    return m.group(1) == "BUILD" or m.group(2) in FILLABLE


def global_allowed(name: str, allow: Iterable[str]) -> bool:
    """May a pickle import ``name``? Only an exact name on ``allow``."""
    return name in allow


def pickle_findings(run, allow: frozenset[str], *, offset: int = 0,
                    nested: bool = False) -> list[tuple[str, str, int]]:
    """``(kind, detail, byte)`` for each finding of one pickle reading.

    Parameters
    ----------
    run : PickleRun
        What the pickle machine saw (its ``events``, ``error``, ``pickles``).
    allow : frozenset of str
        Names a pickle may import (:data:`DEFAULT_ALLOW` and the user's).
    offset : int
        Where the reading started (added to every byte offset).
    nested : bool
        The stream is a byte string inside another pickle: it is data unless the outer
        pickle unpickles it (which needs an import, reported anyway), so a broken one is
        not ``malformed-pickle``.
    """
    out = []
    for event, (kind, template) in PICKLE_RULES.items():
        for e in run.events:
            if e.kind != event or (event == "import" and global_allowed(e.detail, allow)) or (
                    event == "method" and method_allowed(e.detail, allow)):
                continue
            byte = e.offset + offset
            out.append((kind, template.format(name=shown(e.detail), detail=e.detail,
                                              byte=byte), byte))
    # fail closed: a stream that is a pickle (a protocol header, or a STOP reached) and
    # breaks part-way, in its first pickle or in one stacked after it, is a stream the
    # model could not read to the end: what ran before the error is not a safe load, and
    # a loader may read further than the model. Bytes after a STOP that fail at their
    # very first opcode run nothing (a loader reading on fails at once).
    if run.error is not None and not nested and (
            (run.pickles == 0 and run.protocol_header)
            or (run.pickles > 0 and not run.error_first_op)):
        byte = run.error_at + offset
        where = "" if run.pickles == 0 else f" in the pickle after STOP number {run.pickles}"
        out.append(("malformed-pickle", f"{run.error}{where} (byte {byte})", byte))
    return out


# --------------------------------------------------------------------------------------
# Configs: _target_ values and resolvers
# --------------------------------------------------------------------------------------


def target_allowed(target, allow: Iterable[str]) -> bool:
    """May a config build ``target``? Only an exact string the user allowed: the scanner
    has no default ``_target_`` allow-list."""
    return isinstance(target, str) and target in allow


def resolver_allowed(name: str, allow: Iterable[str]) -> bool:
    """May an interpolation call resolver ``name``? A read-only one, or one the user
    allowed."""
    return name in SAFE_RESOLVERS or name in allow

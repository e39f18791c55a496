"""Readers for today's model formats, each failing closed: Keras v3 ``.keras`` and legacy
HDF5 ``.h5`` configs, GGUF headers, Jinja chat templates, Hugging Face ``config.json``
(``auto_map``), ONNX external data, skops schemas, TorchServe ``.mar`` manifests and
Python members of model archives, and 7-Zip (recognised, never read).

Like the other readers, these only report what a loader would do; the tables at the top
(:data:`KERAS_MODULES`, :data:`KERAS_CODE`, :data:`SKOPS_CODE_LOADERS`,
:data:`SKOPS_TRUSTED`, :data:`TEMPLATE_GADGETS`, ...) decide what is a finding, with the
CVE or paper each rule stands for. Anything a reader cannot read to the end is a finding
(``malformed`` when the bytes claim the format and break, ``unverified`` when the scanner
has no reader for them), never "clean".

Nothing here imports a model library: GGUF, ONNX (protobuf wire format) and skops are
parsed from their specifications; Jinja templates are parsed with ``jinja2`` when it is
installed (an optional reader: without it a chat template is ``unverified``).

References
----------
* Keras 3 ``serialization_lib`` (``module``/``class_name``/``registered_name``), safe_mode;
  CVE-2025-1550 (arbitrary module import from ``config.json``), CVE-2025-8747
  (``keras.utils.get_file``), CVE-2025-9906 (``enable_unsafe_deserialization``),
  CVE-2025-49655 (``TorchModuleWrapper``), CVE-2026-1462 (``TFSMLayer``), CVE-2025-9905
  (HDF5: ``safe_mode`` ignored for Lambda layers).
* GGUF specification (ggml docs/gguf.md): magic, version, tensor and key/value counts,
  typed values; CVE-2024-34359 (llama-cpp-python renders ``tokenizer.chat_template``
  outside a sandbox); OWASP Top 10 for LLM applications 2026 (chat-template backdoors).
* Jinja2 docs, "Sandbox"; the ``cycler``/``joiner``/``namespace``/``lipsum`` globals.
* Hugging Face transformers, ``trust_remote_code`` and ``auto_map``.
* ONNX ``onnx.proto3`` (``TensorProto.external_data``, ``StringStringEntryProto``) and the
  protobuf wire format; CVE-2022-25882, CVE-2024-27318, CVE-2025-51480 (external data
  paths leaving the model folder).
* skops ``schema.json`` (``__loader__`` nodes); CVE-2025-54412 (``OperatorFuncNode``),
  CVE-2025-54413 (``MethodNode``), CVE-2025-54886 (``Card.get_model`` falls back to joblib).
* TorchServe model archiver (``MAR-INF/MANIFEST.json``, ``handler``, ``requirementsFile``).
* ReversingLabs, "nullifAI" (2025): a 7z-compressed PyTorch file whose pickle breaks after
  its payload.

See Also
--------
labkit.supplychain.scanner
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import json
import re
import struct

from .blob import Blob
from .findings import Context

__all__ = ["read_formats", "read_json_formats", "read_text_formats", "keras_findings",
           "template_findings", "gguf_metadata", "onnx_external_locations",
           "interpolation_problems",
           "KERAS_MODULES", "KERAS_CODE", "SKOPS_CODE_LOADERS", "SKOPS_TRUSTED",
           "TEMPLATE_GADGETS", "TORCHSERVE_HANDLERS", "CODE_MEMBERS"]


# --------------------------------------------------------------------------------------
# Rule tables
# --------------------------------------------------------------------------------------

KERAS_MODULES: frozenset[str] = frozenset([
    "keras", "keras.layers", "keras.models", "keras.optimizers",
    "keras.optimizers.schedules", "keras.losses", "keras.metrics", "keras.initializers",
    "keras.regularizers", "keras.constraints", "keras.activations", "keras.saving",
    "keras.src.models.functional", "keras.src.models.sequential", "keras.src.models.model",
    "keras.src.engine.functional", "keras.src.engine.sequential", "keras.src.engine.training",
    "keras.engine.functional", "keras.engine.sequential",
])
"""Modules a Keras config may name (``"module"`` of every serialized object): the public
Keras API modules that hold layers, models, optimizers, losses, metrics, initializers,
regularizers, constraints and activations, and the private modules Keras itself writes for
functional and sequential models. Exact names; anything else is a ``code`` finding (Keras
< 3.9 imported any module named there: CVE-2025-1550)."""

KERAS_CODE: dict[str, str] = {
    "Lambda": "a Lambda layer carries marshalled Python bytecode that runs when the model "
              "is built (CVE-2025-1550; in HDF5 files safe_mode is ignored: CVE-2025-9905)",
    "__lambda__": "a serialized Python lambda (marshalled bytecode) (CVE-2025-1550)",
    "TorchModuleWrapper": "TorchModuleWrapper unpickles a torch module with "
                          "torch.load(weights_only=False) (CVE-2025-49655)",
    "TFSMLayer": "TFSMLayer loads a TensorFlow SavedModel (its graph's ops, file access) "
                 "from a path in the config (CVE-2026-1462)",
}
"""Keras class names that load or run code whatever module they come from."""

KERAS_CODE_STRINGS: dict[str, str] = {
    "get_file": "keras.utils.get_file downloads a file named in the config "
                "(CVE-2025-8747, a safe_mode bypass)",
    "enable_unsafe_deserialization": "the config switches safe_mode off for what follows "
                                     "(CVE-2025-9906)",
}
"""Strings anywhere in a Keras config (keys or values) that are findings."""

KERAS_SPECIAL: frozenset[str] = frozenset([
    "__tuple__", "__tensor__", "__numpy__", "__bytes__", "__typespec__", "__keras_tensor__",
    "__ellipsis__", "__slice__"])
"""Keras 3 value wrappers (no module, no code)."""

TEMPLATE_GADGETS: frozenset[str] = frozenset([
    "cycler", "joiner", "namespace", "lipsum", "range", "dict", "self", "config", "request",
    "url_for", "get_flashed_messages", "g", "session"])
"""Jinja globals whose attributes lead to Python internals (``cycler.__init__.__globals__``,
``self._TemplateReference__context``): reading any attribute of them is a ``template``
finding. Calling them (``namespace(found=false)``) is ordinary."""

_ATTRIBUTE_FILTERS = ("map", "selectattr", "rejectattr", "sort", "groupby", "sum",
                      "unique", "min", "max")

TEXT_KEYS: frozenset[str] = frozenset(["content", "text", "prompt", "query", "input"])
"""Message fields whose value is the user's text: a template that compares them with a
phrase has instructions that appear only for some inputs (``template-trigger``)."""

SKOPS_CODE_LOADERS: dict[str, str] = {
    "OperatorFuncNode": "an operator function node calls an operator on loaded objects "
                        "(CVE-2025-54412)",
    "MethodNode": "a method node binds a method of a loaded object (CVE-2025-54413)",
}
"""skops ``__loader__`` nodes that call code."""

SKOPS_LOADERS: frozenset[str] = frozenset([
    "ObjectNode", "ReduceNode", "FunctionNode", "TypeNode", "NdArrayNode",
    "MaskedArrayNode", "JsonNode", "ListNode", "DictNode", "TupleNode", "SetNode",
    "SliceNode", "SparseMatrixNode", "PartialNode", "BytesNode", "BytearrayNode",
    "RandomStateNode", "RandomGeneratorNode", "SGDNode", "DTypeNode", "NumpyScalarNode",
    "StringNode"])
"""skops ``__loader__`` node types that only rebuild data or trusted types."""

_SK = {
    "sklearn.linear_model._logistic": ["LogisticRegression"],
    "sklearn.linear_model._base": ["LinearRegression"],
    "sklearn.linear_model._ridge": ["Ridge", "RidgeClassifier"],
    "sklearn.linear_model._stochastic_gradient": ["SGDClassifier", "SGDRegressor"],
    "sklearn.linear_model._coordinate_descent": ["Lasso", "ElasticNet"],
    "sklearn.tree._classes": ["DecisionTreeClassifier", "DecisionTreeRegressor"],
    "sklearn.tree._tree": ["Tree"],
    "sklearn.ensemble._forest": ["RandomForestClassifier", "RandomForestRegressor",
                                 "ExtraTreesClassifier", "ExtraTreesRegressor"],
    "sklearn.ensemble._gb": ["GradientBoostingClassifier", "GradientBoostingRegressor"],
    "sklearn.preprocessing._data": ["StandardScaler", "MinMaxScaler", "RobustScaler"],
    "sklearn.preprocessing._label": ["LabelEncoder"],
    "sklearn.pipeline": ["Pipeline"],
    "sklearn.neighbors._classification": ["KNeighborsClassifier"],
    "sklearn.svm._classes": ["SVC", "SVR", "LinearSVC"],
    "sklearn.naive_bayes": ["GaussianNB"],
    "sklearn.cluster._kmeans": ["KMeans"],
    "sklearn.decomposition._pca": ["PCA"],
    "sklearn.dummy": ["DummyClassifier"],
    "sklearn._loss.loss": ["HalfBinomialLoss", "HalfSquaredError", "HalfMultinomialLoss"],
    "sklearn._loss.link": ["LogitLink", "IdentityLink", "MultinomialLogit", "Interval"],
    "builtins": ["dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bool",
                 "NoneType", "complex", "slice", "bytes", "bytearray"],
    "numpy": ["ndarray", "dtype", "float64", "float32", "int64", "int32", "bool_",
              "uint8", "intc"],
    "numpy.random": ["RandomState", "Generator"],
    "numpy.random.mtrand": ["RandomState"],
    "numpy.random._generator": ["Generator"],
    "numpy.random._pcg64": ["PCG64"],
    "numpy.random._mt19937": ["MT19937"],
    "scipy.sparse._csr": ["csr_matrix"],
    "scipy.sparse._csc": ["csc_matrix"],
}
SKOPS_TRUSTED: frozenset[str] = frozenset(f"{m}.{c}" for m, cs in _SK.items() for c in cs)
"""Types a skops file may rebuild without a finding: builtins, numpy arrays and scalars,
and common scikit-learn estimators (exact ``module.Class`` names; pass others with
``--allow``)."""

TORCHSERVE_HANDLERS: frozenset[str] = frozenset([
    "image_classifier", "image_segmenter", "object_detector", "text_classifier",
    "text_classification", "densenet_handler"])
"""TorchServe's built-in handlers (code shipped with the server, not with the model)."""

CODE_MEMBERS: tuple[str, ...] = (".py", ".pyc", ".pyo", ".pyw", ".so", ".pyd", ".dll",
                                 ".dylib", ".sh")
"""Member name endings that are code a loader may import or run (a TorchServe handler,
``trust_remote_code`` modules, native extensions)."""

_TORCHSCRIPT_CODE = re.compile(r"(^|/)code/__torch__(/|\.py)")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
GGUF_MAGIC = b"GGUF"


# --------------------------------------------------------------------------------------
# Dispatcher: binary formats and member names
# --------------------------------------------------------------------------------------


def read_formats(ctx: Context, blob: Blob, member: str, depth: int) -> None:
    """Every reading of this module on one blob: 7-Zip, HDF5, GGUF, ONNX, and the name of
    an archive member (or of the file) that is code."""
    head = blob.head(16)
    _code_member(ctx, member)
    if head.startswith(SEVENZIP_MAGIC):
        ctx.fmt(member, "7z")
        ctx.add(member, "unverified", "7-Zip archive: the scanner has no 7z reader, its "
                "members are not read (the nullifAI technique hid a pickle in one)")
    if any(blob.read(off, 8) == HDF5_MAGIC for off in (0, 512, 1024, 2048)):
        _read_hdf5(ctx, blob, member)
    if head.startswith(GGUF_MAGIC):
        _read_gguf(ctx, blob, member)
    if head[:1] in _ONNX_FIRST_TAGS:
        _read_onnx(ctx, blob, member)


def _member_name(ctx: Context, member: str) -> str:
    return member.rsplit("!", 1)[-1] if member else str(ctx.path)


def _code_member(ctx: Context, member: str) -> None:
    name = _member_name(ctx, member).replace("\\", "/")
    low = name.lower()
    if not low.endswith(CODE_MEMBERS) or _TORCHSCRIPT_CODE.search(low):
        return
    where = "an archive member" if member else "a file"
    ctx.add(member, "code", f"{where} named {name.rsplit('/', 1)[-1]!r} is code a loader "
            "imports or runs (a TorchServe handler, trust_remote_code modules): review it")


# --------------------------------------------------------------------------------------
# Keras (.keras config.json, HDF5 model_config)
# --------------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_keras_config(obj) -> bool:
    """A serialized Keras object at the top: ``class_name`` and ``config`` keys."""
    return isinstance(obj, dict) and isinstance(obj.get("class_name"), str) and "config" in obj


def keras_findings(obj) -> list[tuple[str, str]]:
    """``(kind, detail)`` for every object of a Keras config outside the allow-list.

    Every dict with a ``class_name`` is an object Keras builds: its ``module`` must be
    on :data:`KERAS_MODULES` (or absent, in the legacy format), its ``class_name`` a plain
    identifier not on :data:`KERAS_CODE`, its ``registered_name`` empty or the class name
    (anything else is a custom object: code the loading program registered). Strings on
    :data:`KERAS_CODE_STRINGS` anywhere are findings.

    Examples
    --------
    >>> keras_findings({"module": "os", "class_name": "system", "config": {}})[0][0]
    'code'
    """
    out: list[tuple[str, str]] = []
    stack = [(obj, "")]
    n = 0
    while stack:
        node, path = stack.pop()
        n += 1
        if isinstance(node, dict):
            cn = node.get("class_name")
            if isinstance(cn, str):
                out.extend(_keras_object(node, cn, path))
            for k, v in node.items():
                _keras_strings(str(k), path, out)
                stack.append((v, f"{path}.{k}" if path else str(k)))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str):
            _keras_strings(node, path, out)
    return list(dict.fromkeys(out))


def _keras_strings(s: str, path: str, out: list) -> None:
    for needle, why in KERAS_CODE_STRINGS.items():
        if needle in s:
            out.append(("code", f"{path or 'config'}: {why}"))


def _keras_object(node: dict, cn: str, path: str) -> list[tuple[str, str]]:
    mod, reg = node.get("module"), node.get("registered_name")
    where = path or "config"
    if cn in KERAS_CODE:
        return [("code", f"{where}: class_name {cn!r}: {KERAS_CODE[cn]}")]
    if cn.startswith("__") and cn.endswith("__"):
        if cn in KERAS_SPECIAL and mod is None:
            return []
        return [("code", f"{where}: unknown Keras value wrapper {cn!r}")]
    out = []
    if mod is not None and (not isinstance(mod, str) or mod not in KERAS_MODULES):
        out.append(("code", f"{where}: module {mod!r} (class {cn!r}) is outside the Keras "
                    "allow-list: Keras imports it (CVE-2025-1550)"))
    if not _IDENT.match(cn):
        out.append(("code", f"{where}: class_name {cn!r} is not a plain Keras class name"))
    if cn == "function" and mod is not None:
        fn = node.get("config")
        if not (isinstance(fn, str) and _IDENT.match(fn)):
            out.append(("code", f"{where}: a function reference {fn!r}"))
    if reg is not None and reg != cn and not (cn == "function" and reg == "function"):
        out.append(("code", f"{where}: registered_name {reg!r}: a custom object, code the "
                    "loading program must register"))
    return out


def _keras_report(ctx: Context, member: str, obj) -> None:
    for kind, detail in keras_findings(obj):
        ctx.add(member, kind, detail)


def _read_hdf5(ctx: Context, blob: Blob, member: str) -> None:
    """Legacy Keras HDF5: the ``model_config`` (and ``training_config``) attributes are
    JSON text in the file; without h5py they are found by searching for it. A config
    attribute whose JSON cannot be found or parsed is ``unverified``; an HDF5 file with no
    config is ``unverified`` too, unless it is a Keras v3 weights member
    (``*.weights.h5``: only datasets are read from it)."""
    ctx.fmt(member, "hdf5")
    buf, a, b = blob.buf, blob.start, blob.start + blob.size
    has_config = buf.find(b"model_config", a, b) >= 0
    found, keras_seen = 0, False
    for needle in (b'{"class_name"', b'{"module"', b'{"loss"', b'{"optimizer_config"'):
        pos = buf.find(needle, a, b)
        while pos >= 0 and found < 64:
            window = bytes(buf[pos:min(b, pos + ctx.budget.max_text)])
            try:
                obj, _ = json.JSONDecoder().raw_decode(window.decode("utf-8", "replace"))
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict):
                found += 1
                keras_seen = True
                _keras_report(ctx, member, obj)
            pos = buf.find(needle, pos + 1, b)
    lambda_seen = any(f.member == member and "ambda" in f.detail for f in ctx.findings)
    if not lambda_seen and (buf.find(b"Lambda", a, b) >= 0 or buf.find(b"__lambda__", a, b) >= 0):
        ctx.add(member, "unverified", "HDF5 file mentions a Lambda layer outside the "
                "config text the scanner found")
    name = _member_name(ctx, member).lower()
    if has_config and not keras_seen:
        ctx.add(member, "unverified", "HDF5 model_config attribute whose JSON text the "
                "scanner cannot find or parse (compressed or split storage): not read")
    elif not has_config and not name.endswith(".weights.h5"):
        ctx.add(member, "unverified", "HDF5 file without a Keras model config: the scanner "
                "reads only Keras configs in HDF5 (no HDF5 reader installed)")


# --------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


class _Truncated(ValueError):
    pass


class _Reader:
    """A bounds-checked little-endian cursor over a blob."""

    def __init__(self, blob: Blob, pos: int = 0):
        self.blob, self.pos = blob, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.blob.size:
            raise _Truncated(f"needs {n} bytes at byte {self.pos}, the file ends at "
                             f"{self.blob.size}")
        out = self.blob.read(self.pos, n)
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.blob.size:
            raise _Truncated(f"skips {n} bytes at byte {self.pos}, past the end")
        self.pos += n

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]


def gguf_metadata(blob: Blob, *, max_string: int = 64 << 20) -> dict:
    """Parse a GGUF header: ``{"version", "n_tensors", "metadata": {key: value}}``.

    String values are kept; arrays of strings are kept only when they are short (the
    token list is skipped); numeric arrays are skipped. Tensor infos are read to check
    the header ends where it says. Raises ValueError on anything the spec does not allow
    (fail closed: the caller reports it).
    """
    r = _Reader(blob)
    if r.take(4) != GGUF_MAGIC:
        raise ValueError("no GGUF magic")
    version = r.unpack("<I")
    if version not in (1, 2, 3):
        raise ValueError(f"unknown GGUF version {version}")
    count = "<I" if version == 1 else "<Q"
    n_tensors, n_kv = r.unpack(count), r.unpack(count)
    if n_kv * 13 > blob.size or n_tensors * 24 > blob.size:
        raise ValueError(f"{n_kv} key/values and {n_tensors} tensors cannot fit in "
                         f"{blob.size} bytes")

    def string() -> str:
        n = r.unpack(count)
        if n > max_string:
            raise ValueError(f"a string of {n} bytes at byte {r.pos}")
        return r.take(n).decode("utf-8", "strict")

    def value(vtype: int, depth: int = 0):
        if vtype in _GGUF_SCALARS:
            return r.unpack(_GGUF_SCALARS[vtype])
        if vtype == _GGUF_STRING:
            return string()
        if vtype == _GGUF_ARRAY:
            if depth > 2:
                raise ValueError("arrays nested too deeply")
            etype, n = r.unpack("<I"), r.unpack(count)
            if etype in _GGUF_SCALARS:
                r.skip(n * struct.calcsize(_GGUF_SCALARS[etype]))
                return f"<array of {n}>"
            if n * 8 > blob.size - r.pos:
                raise ValueError(f"an array of {n} values cannot fit")
            items = [value(etype, depth + 1) for _ in range(n)]
            return items if n <= 64 else f"<array of {n}>"
        raise ValueError(f"unknown value type {vtype} at byte {r.pos - 4}")

    meta: dict = {}
    for _ in range(n_kv):
        key = string()
        meta.setdefault(key, value(r.unpack("<I")))
    for _ in range(n_tensors):
        string()
        n_dims = r.unpack("<I")
        if n_dims > 8:
            raise ValueError(f"a tensor with {n_dims} dimensions")
        r.skip(n_dims * (4 if version == 1 else 8))
        r.skip(4 + 8)  # type, offset
    return {"version": version, "n_tensors": n_tensors, "metadata": meta, "end": r.pos}


def _read_gguf(ctx: Context, blob: Blob, member: str) -> None:
    ctx.fmt(member, "gguf")
    try:
        info = gguf_metadata(blob, max_string=ctx.budget.max_text)
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        ctx.add(member, "malformed", f"GGUF header cannot be read to the end: {e}")
        return
    for key, val in info["metadata"].items():
        if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template."):
            if isinstance(val, str):
                _report_template(ctx, member, val, where=key, explicit=True)
            else:
                ctx.add(member, "malformed", f"{key} is not a string")


# --------------------------------------------------------------------------------------
# Jinja chat templates
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"^\s*(<\|?[^<>\s]{0,64}\|?>|\[/?[A-Za-z_]{1,32}\]|<[^<>]{0,64}>)\s*$")
_ESCAPED_UNDERSCORE = re.compile(r"\\x5f|\\u005f|\\137|\\N\{LOW LINE\}", re.I)


def _blocks(src: str):
    """The code inside each ``{{ ... }}`` and ``{% ... %}`` block, in linear time (no
    backtracking regex on attacker-sized text)."""
    i, nxt = 0, {"{{": src.find("{{"), "{%": src.find("{%")}
    while True:
        for opener, at in nxt.items():   # each search restarts only once it is passed
            if 0 <= at < i:
                nxt[opener] = src.find(opener, i)
        starts = [x for x in nxt.values() if x >= 0]
        if not starts:
            return
        a = min(starts)
        b = src.find("}}" if src[a + 1] == "{" else "%}", a + 2)
        if b < 0:
            return
        yield src[a + 2:b]
        i = b + 2


def _looks_like_template(text: str) -> bool:
    return "{%" in text or ("{{" in text and "}}" in text)


_ATTR_FILTER = re.compile(r"\|\s*attr\b")
_GADGET_USE = re.compile(r"(?<![\w.])(" + "|".join(sorted(TEMPLATE_GADGETS)) + r")\s*[.\[]")


def _regex_template(src: str) -> list[tuple[str, str]]:
    """The rules that need no parser: dunders, escapes of ``_``, ``attr`` and gadget
    globals inside Jinja blocks."""
    out = []
    for code in _blocks(src):
        if "__" in code:
            out.append(("template", "a dunder name inside a template block"))
        if _ESCAPED_UNDERSCORE.search(code):
            out.append(("template", "an escaped underscore inside a template block"))
        if _ATTR_FILTER.search(code):
            out.append(("template", "the attr filter (attribute access by a string)"))
        for m in _GADGET_USE.finditer(code):
            out.append(("template", f"attribute of the {m.group(1)!r} global"))
    return list(dict.fromkeys(out))


def template_findings(src: str, *, explicit: bool = True) -> list[tuple[str, str]] | None:
    """``(kind, detail)`` for a Jinja template; None when jinja2 is not installed.

    ``template``: attribute or subscript names starting with ``_`` (also when built from
    constants: ``'_' ~ '_class__'``, ``'%c%c'|format(95, 95)``), computed subscript keys,
    the ``attr`` filter, attribute filters with private names, attributes of the gadget
    globals (:data:`TEMPLATE_GADGETS`). ``template-trigger``: a comparison (``in``,
    ``==``, ``startswith``...) of a message's text (:data:`TEXT_KEYS`) with a phrase that
    is not a markup token. A template that does not parse is ``unverified`` when
    ``explicit`` (a chat template a loader renders), ignored otherwise (plain text).

    Examples
    --------
    >>> template_findings("{{ cycler.__init__.__globals__ }}")[0][0]
    'template'
    >>> template_findings("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    []
    """
    try:
        import jinja2
        from jinja2 import nodes
    except ImportError:  # pragma: no cover - jinja2 comes with jupyter
        return None
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"])
    try:
        tree = env.parse(src)
    except (jinja2.TemplateSyntaxError, RecursionError, ValueError) as e:
        if explicit:
            return [("unverified", f"template does not parse as Jinja: {e}")]
        return []
    out = _regex_template(src)
    text_names = _text_names(tree, nodes)
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                out.append(("template", f"attribute {node.attr!r} (Python internals)"))
            if isinstance(node.node, nodes.Name) and node.node.name in TEMPLATE_GADGETS:
                out.append(("template", f"attribute {node.attr!r} of the "
                            f"{node.node.name!r} global"))
        elif isinstance(node, nodes.Getitem):
            key = _fold(node.arg, nodes)
            if isinstance(key, str) and key.startswith("_"):
                out.append(("template", f"subscript {key!r} (Python internals)"))
            elif key is None and not _plain_index(node.arg, nodes):
                out.append(("template", "a subscript with a computed key"))
            if isinstance(node.node, nodes.Name) and node.node.name in TEMPLATE_GADGETS:
                out.append(("template", f"subscript of the {node.node.name!r} global"))
        elif isinstance(node, nodes.Filter):
            if node.name == "attr":
                out.append(("template", "the attr filter (attribute access by a string)"))
            elif node.name in _ATTRIBUTE_FILTERS:
                for kw in node.kwargs:
                    name = _fold(kw.value, nodes)
                    if kw.key == "attribute" and not (isinstance(name, str)
                                                      and not name.startswith("_")):
                        out.append(("template", f"{node.name}(attribute=...) with a "
                                    "private or computed name"))
        elif isinstance(node, (nodes.Concat, nodes.Add, nodes.Mul)):
            folded = _fold(node, nodes)
            if isinstance(folded, str) and "__" in folded:
                out.append(("template", f"a string that builds a dunder name {folded!r}"))
        elif isinstance(node, nodes.Const) and isinstance(node.value, str) \
                and "__" in node.value:
            out.append(("template", f"a string holding a dunder name {node.value[:40]!r}"))
        out.extend(_trigger(node, nodes, text_names))
    return list(dict.fromkeys(out))


def _plain_index(arg, nodes) -> bool:
    """A subscript key that is a variable, an attribute path or integer arithmetic."""
    if isinstance(arg, (nodes.Name, nodes.Slice)):
        return True
    if isinstance(arg, nodes.Const):
        return not isinstance(arg.value, str) or not arg.value.startswith("_")
    if isinstance(arg, nodes.Getattr):
        return _plain_index(arg.node, nodes) and not arg.attr.startswith("_")
    if isinstance(arg, nodes.Getitem):
        return _plain_index(arg.node, nodes) and _plain_index(arg.arg, nodes)
    if isinstance(arg, (nodes.Add, nodes.Sub, nodes.Mul, nodes.FloorDiv, nodes.Mod)):
        return all(_plain_index(x, nodes) and _fold(x, nodes) is None
                   or isinstance(_fold(x, nodes), int) for x in (arg.left, arg.right))
    if isinstance(arg, (nodes.Neg, nodes.Pos)):
        return _plain_index(arg.node, nodes)
    return False


def _fold(node, nodes, depth: int = 0):
    """The constant value of an expression built only from constants (str/int), else None."""
    if depth > 50:
        return None
    if isinstance(node, nodes.Const):
        return node.value if isinstance(node.value, (str, int)) else None
    if isinstance(node, nodes.Concat):
        parts = [_fold(x, nodes, depth + 1) for x in node.nodes]
        return None if any(p is None for p in parts) else "".join(map(str, parts))
    if isinstance(node, (nodes.Add, nodes.Mul)):
        a, b = _fold(node.left, nodes, depth + 1), _fold(node.right, nodes, depth + 1)
        if a is None or b is None:
            return None
        try:
            r = a + b if isinstance(node, nodes.Add) else a * b
        except TypeError:
            return None
        return r if not isinstance(r, str) or len(r) < 4096 else None
    if isinstance(node, nodes.List):
        return None
    if isinstance(node, nodes.Filter) and node.node is not None:
        base = _fold(node.node, nodes, depth + 1)
        if node.name == "join" and isinstance(node.node, nodes.List):
            items = [_fold(x, nodes, depth + 1) for x in node.node.items]
            if all(isinstance(i, str) for i in items):
                return "".join(items)
            return None
        args = [_fold(a, nodes, depth + 1) for a in node.args]
        if base is None or any(a is None for a in args):
            return None
        try:
            if node.name == "format" and isinstance(base, str):
                return base % tuple(args)
            if node.name in ("lower", "upper", "trim", "string") and isinstance(base, str):
                return {"lower": base.lower, "upper": base.upper, "trim": base.strip,
                        "string": lambda: base}[node.name]()
            if node.name == "replace" and isinstance(base, str) and len(args) >= 2:
                return base.replace(str(args[0]), str(args[1]))
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _reads_text(node, nodes, names: set) -> bool:
    for n in [node, *node.find_all((nodes.Getitem, nodes.Getattr, nodes.Name))]:
        if isinstance(n, nodes.Getitem) and isinstance(n.arg, nodes.Const) \
                and n.arg.value in TEXT_KEYS:
            return True
        if isinstance(n, nodes.Getattr) and n.attr in TEXT_KEYS:
            return True
        if isinstance(n, nodes.Name) and n.name in names:
            return True
    return False


def _text_names(tree, nodes) -> set:
    """Variables set from a message's text (``{% set content = message['content'] %}``)."""
    names: set = set()
    for _ in range(3):
        for a in tree.find_all((nodes.Assign, nodes.For)):
            value = a.node if isinstance(a, nodes.Assign) else a.iter
            if _reads_text(value, nodes, names):
                for t in a.target.find_all(nodes.Name) if not isinstance(
                        a.target, nodes.Name) else [a.target]:
                    names.add(t.name)
    return names


def _phrase(value) -> bool:
    return isinstance(value, str) and sum(c.isalnum() for c in value) >= 2 \
        and not _TOKEN.match(value)


def _trigger(node, nodes, names: set) -> list[tuple[str, str]]:
    out = []
    if isinstance(node, nodes.Compare):
        sides = [node.expr] + [op.expr for op in node.ops]
        ops = {op.op for op in node.ops}
        if ops & {"in", "notin", "eq", "ne"}:
            consts = [s.value for s in sides if isinstance(s, nodes.Const)]
            if any(_phrase(c) for c in consts) and any(
                    _reads_text(s, nodes, names) for s in sides
                    if not isinstance(s, nodes.Const)):
                phrase = next(c for c in consts if _phrase(c))
                out.append(("template-trigger", f"branches on the message text containing "
                            f"{phrase[:60]!r}: instructions for some inputs only"))
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) \
            and node.node.attr in ("startswith", "endswith", "find", "rfind", "count",
                                   "index", "__contains__", "split", "replace"):
        args = [a.value for a in node.args if isinstance(a, nodes.Const)]
        if any(_phrase(a) for a in args) and _reads_text(node.node.node, nodes, names):
            phrase = next(a for a in args if _phrase(a))
            out.append(("template-trigger", f"branches on the message text "
                        f"({node.node.attr} {phrase[:60]!r}): instructions for some inputs "
                        "only"))
    elif isinstance(node, nodes.Test) and node.name in ("in", "sameas", "eq", "equalto"):
        args = [a.value for a in node.args if isinstance(a, nodes.Const)]
        if any(_phrase(a) for a in args) and _reads_text(node.node, nodes, names):
            out.append(("template-trigger", "tests the message text against a phrase"))
    return out


def _report_template(ctx: Context, member: str, src: str, *, where: str,
                     explicit: bool) -> None:
    found = template_findings(src, explicit=explicit)
    if found is None:
        found = _regex_template(src)
        if explicit and not found:
            found = [("unverified", "chat template not parsed (jinja2 is not installed)")]
    if found or explicit:
        ctx.fmt(member, "jinja")
    for kind, detail in found:
        ctx.add(member, kind, f"{where}: {detail}")


# --------------------------------------------------------------------------------------
# JSON and text hooks (called by configs for every parsed JSON document and text)
# --------------------------------------------------------------------------------------


def read_json_formats(ctx: Context, member: str, parsed) -> None:
    """Format rules on a parsed JSON document: Keras configs, Hugging Face ``auto_map``
    and ``chat_template``, skops schemas, TorchServe manifests, skops model references.
    Duplicate keys (kept aside by :func:`~labkit.supplychain.configs.json_pairs`; ``json``
    keeps the last one) are checked too."""
    if isinstance(parsed, dict):
        for dup in parsed.get("\x00dup", ()):
            if isinstance(dup, dict):
                read_json_formats(ctx, member, dup)
    if isinstance(parsed, list) and parsed and all(is_keras_config(x) for x in parsed):
        for x in parsed:
            _keras_report(ctx, member, x)
    if not isinstance(parsed, dict):
        return
    if is_keras_config(parsed):
        ctx.fmt(member, "keras-config")
        _keras_report(ctx, member, parsed)
    for key in ("auto_map", "custom_pipelines"):
        if key in parsed:
            refs = json.dumps(parsed[key])[:120]
            ctx.add(member, "code", f"{key} {refs}: repository code that transformers runs "
                    "with trust_remote_code=True")
    tpl = parsed.get("chat_template")
    if isinstance(tpl, str):
        _report_template(ctx, member, tpl, where="chat_template", explicit=True)
    elif isinstance(tpl, list):
        for i, t in enumerate(tpl):
            src = t.get("template") if isinstance(t, dict) else None
            if isinstance(src, str):
                _report_template(ctx, member, src, where=f"chat_template[{i}]", explicit=True)
            else:
                ctx.add(member, "unverified", f"chat_template[{i}] is not a template string")
    elif tpl is not None:
        ctx.add(member, "unverified", "chat_template is neither a string nor a list")
    if "__loader__" in parsed and ("_skops_version" in parsed or "protocol" in parsed):
        ctx.fmt(member, "skops-schema")
        for kind, detail in skops_findings(parsed, ctx.extra_allow):
            ctx.add(member, kind, detail)
    model = parsed.get("model")
    if isinstance(model, dict) and "handler" in model and (
            "archiverVersion" in parsed or "runtime" in parsed):
        ctx.fmt(member, "torchserve-manifest")
        handler = model.get("handler")
        if handler not in TORCHSERVE_HANDLERS:
            ctx.add(member, "code", f"TorchServe handler {handler!r}: Python code the "
                    "server imports when it loads the model")
        for key in ("requirementsFile", "modelFile", "extensions"):
            if model.get(key):
                ctx.add(member, "code", f"TorchServe {key} {model[key]!r}: code or packages "
                        "installed and run at load")
    sk = parsed.get("sklearn")
    if isinstance(sk, dict):
        _skops_reference(ctx, member, sk)


def _skops_reference(ctx: Context, member: str, meta: dict) -> None:
    fmt = meta.get("model_format")
    file = meta.get("model", {}).get("file") if isinstance(meta.get("model"), dict) \
        else meta.get("model_file")
    if fmt == "pickle" or (isinstance(file, str) and not file.endswith(".skops")):
        ctx.add(member, "code", f"model file {file!r} (format {fmt!r}) is not a .skops "
                "file: skops' Card.get_model loads it with joblib, i.e. unpickles it "
                "(CVE-2025-54886); scan that file too")


def skops_findings(schema: dict, allow=frozenset()) -> list[tuple[str, str]]:
    """``(kind, detail)`` for each node of a skops ``schema.json`` that calls code or
    rebuilds a type outside :data:`SKOPS_TRUSTED` (plus ``allow``)."""
    out = []
    stack = [(schema, "schema")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            loader = node.get("__loader__")
            if loader is not None:
                if loader in SKOPS_CODE_LOADERS:
                    out.append(("code", f"{path}: {loader}: {SKOPS_CODE_LOADERS[loader]}"))
                elif loader not in SKOPS_LOADERS:
                    out.append(("code", f"{path}: unknown skops node {loader!r}"))
                names = []
                if "__module__" in node or "__class__" in node:
                    names.append(f"{node.get('__module__')}.{node.get('__class__')}")
                content = node.get("content")
                if loader in ("FunctionNode", "TypeNode") and isinstance(content, dict):
                    mod = content.get("module_path", content.get("__module__"))
                    name = content.get("function", content.get("__class__"))
                    if mod is not None or name is not None:
                        names.append(f"{mod}.{name}")
                for n in names:
                    if n not in SKOPS_TRUSTED and n not in allow:
                        out.append(("code", f"{path}: type {n} is outside the skops "
                                    "allow-list"))
            for k, v in node.items():
                stack.append((v, f"{path}.{k}"))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return list(dict.fromkeys(out))


def read_text_formats(ctx: Context, member: str, text: str) -> None:
    """Rules on a decoded text: Jinja templates (``{% ... %}``/``{{ ... }}``, explicit for
    ``*.jinja`` names) and a model card's front matter naming a pickled model."""
    name = _member_name(ctx, member).lower()
    explicit = name.endswith((".jinja", ".jinja2", ".j2"))
    if explicit or _looks_like_template(text):
        _report_template(ctx, member, text, where="template", explicit=explicit)
    if text.startswith("---") and name.endswith(".md"):
        end = text.find("\n---", 3)
        if 0 < end < (1 << 20):
            import yaml

            try:
                front = yaml.safe_load(text[3:end])
            except (yaml.YAMLError, RecursionError, ValueError):
                return
            if isinstance(front, dict) and ("model_file" in front or "model_format" in front):
                _skops_reference(ctx, member, front)


# --------------------------------------------------------------------------------------
# ONNX: the protobuf wire format, minimally
# --------------------------------------------------------------------------------------


class _PBError(ValueError):
    pass


# message name -> {field number: (wire type, sub-message name or None)}
_ONNX: dict[str, dict[int, tuple[int, str | None]]] = {
    "Model": {1: (0, None), 2: (2, None), 3: (2, None), 4: (2, None), 5: (0, None),
              6: (2, None), 7: (2, "Graph"), 8: (2, None), 14: (2, None),
              20: (2, "Training"), 25: (2, "Function")},
    "Graph": {1: (2, "Node"), 2: (2, None), 5: (2, "Tensor"), 15: (2, "Sparse"),
              10: (2, None), 11: (2, None), 12: (2, None), 13: (2, None), 14: (2, None),
              16: (2, None)},
    "Node": {1: (2, None), 2: (2, None), 3: (2, None), 4: (2, None), 7: (2, None),
             5: (2, "Attribute"), 6: (2, None), 8: (2, None), 9: (2, None)},
    "Attribute": {5: (2, "Tensor"), 6: (2, "Graph"), 10: (2, "Tensor"), 11: (2, "Graph"),
                  22: (2, "Sparse"), 23: (2, "Sparse")},
    "Tensor": {13: (2, "Entry"), 14: (0, None)},
    "Sparse": {1: (2, "Tensor"), 2: (2, "Tensor")},
    "Training": {1: (2, "Graph"), 2: (2, "Graph")},
    "Function": {5: (2, "Node")},
    "Entry": {1: (2, None), 2: (2, None)},
}
_ONNX_FIRST_TAGS = {bytes([(f << 3) | wt]) for f, (wt, _) in _ONNX["Model"].items() if f < 16}


def _varint(buf: Blob, pos: int, end: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _PBError(f"truncated or overlong varint at byte {pos}")
        b = buf.read(pos, 1)[0]
        pos += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return out, pos


def _fields(blob: Blob, start: int, end: int):
    """Yield ``(field, wire type, value, value_start, value_end)`` of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(blob, pos, end)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise _PBError(f"field number 0 at byte {pos}")
        if wt == 0:
            v, pos = _varint(blob, pos, end)
            yield field, wt, v, pos, pos
        elif wt == 1 or wt == 5:
            n = 8 if wt == 1 else 4
            if pos + n > end:
                raise _PBError(f"truncated fixed field at byte {pos}")
            yield field, wt, None, pos, pos + n
            pos += n
        elif wt == 2:
            n, pos = _varint(blob, pos, end)
            if pos + n > end:
                raise _PBError(f"length {n} at byte {pos} runs past the message end")
            yield field, wt, None, pos, pos + n
            pos += n
        else:
            raise _PBError(f"wire type {wt} (groups are not ONNX) at byte {pos}")


def onnx_external_locations(blob: Blob, *, max_depth: int = 64) -> tuple[list[str], bool]:
    """Every ``external_data`` location of every tensor of an ONNX ``ModelProto``, and
    whether the message has a graph. Raises ValueError when the protobuf cannot be
    parsed to the end (fail closed)."""
    locations: list[str] = []
    has_graph = False
    stack = [("Model", 0, blob.size, 0)]
    while stack:
        msg, a, b, depth = stack.pop()
        if depth > max_depth:
            raise _PBError("messages nested too deeply")
        schema = _ONNX[msg]
        entry = {}
        for field, wt, v, s, e in _fields(blob, a, b):
            spec = schema.get(field)
            if spec is None:
                continue
            want, sub = spec
            if wt != want:
                raise _PBError(f"{msg} field {field} has wire type {wt}, expected {want}")
            if msg == "Model" and field == 7:
                has_graph = True
            if msg == "Entry":
                entry[field] = blob.read(s, e - s).decode("utf-8", "strict")
            elif sub is not None:
                stack.append((sub, s, e, depth + 1))
        if msg == "Entry" and entry.get(1) == "location":
            locations.append(entry.get(2, ""))
    return locations, has_graph


def _escapes(location: str) -> bool:
    p = location.replace("\\", "/")
    return (p.startswith("/") or ".." in p.split("/") or (len(p) > 1 and p[1] == ":")
            or "\x00" in p or p.startswith("~"))


def _read_onnx(ctx: Context, blob: Blob, member: str) -> None:
    """An ONNX model: a protobuf ``ModelProto`` with a graph, parsed to its end. Each
    tensor's external data must be a relative path inside the model folder."""
    try:
        locations, has_graph = onnx_external_locations(blob)
    except (ValueError, UnicodeDecodeError) as e:
        if _member_name(ctx, member).lower().endswith(".onnx"):
            ctx.add(member, "malformed", f"ONNX protobuf cannot be parsed to the end: {e}")
        return  # not a protobuf: some other reading (or none: unverified)
    if not has_graph:
        return
    ctx.fmt(member, "onnx")
    for loc in dict.fromkeys(locations):
        if _escapes(loc):
            ctx.add(member, "external-path", f"tensor external data location {loc!r} is "
                    "absolute or leaves the model folder (CVE-2022-25882, CVE-2024-27318, "
                    "CVE-2025-51480)")


# --------------------------------------------------------------------------------------
# OmegaConf interpolations: OmegaConf's own grammar, or refuse
# --------------------------------------------------------------------------------------

_NAME = re.compile(r"\s*([A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)?\s*")


def _textual_calls(s: str) -> tuple[list[str], list[str]]:
    """(resolver names, problems) from the text alone, with every backslash before
    ``${`` ignored (an escaped call becomes a real one if anything resolves the result
    again)."""
    names, problems = [], []
    i = s.find("${")
    while i >= 0:
        m = _NAME.match(s, i + 2)
        j = m.end()
        nxt = s[j:j + 1]
        name = m.group(1) or ""
        if nxt == ":":
            names.append(name)
            if not name:
                problems.append("a resolver call without a plain name")
        elif nxt == "$" or (nxt == "." and s[j + 1:j + 3] == "${"):
            problems.append(f"a resolver or node name built by interpolation "
                            f"({s[i:i + 24]!r})")
        i = s.find("${", i + 2)
    return names, problems


def interpolation_problems(s: str, allowed) -> list[str]:
    """Why a string's OmegaConf interpolations are not safe to resolve (empty when they
    are): a resolver outside ``allowed``, a resolver name built by interpolation
    (``${oc.${k}:...}``, ``${${r}:...}``), or an escaped call (``\\${eval:...}`` is a
    literal that calls ``eval`` if anything resolves the result again). Parsed with
    ``omegaconf.grammar_parser.parse`` when OmegaConf is installed (text its grammar
    rejects raises when read: no resolver runs; every ``${name:`` in the text is still
    checked); without OmegaConf, anything but plain names is refused.

    Examples
    --------
    >>> interpolation_problems("${oc.env:HOME}/x", {"oc.env"})
    []
    >>> interpolation_problems("${eval:1}", {"oc.env"})
    ['${eval:...}: a resolver that can build nodes or run code']
    """
    if "${" not in s:
        return []
    names, problems = _textual_calls(s)
    try:
        from omegaconf import grammar_parser
        from omegaconf.errors import GrammarParseError
        from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
    except ImportError:
        grammar_parser = None
    if grammar_parser is not None:
        try:
            tree = grammar_parser.parse(s)
        except GrammarParseError:
            pass  # OmegaConf raises on reading it: no resolver runs (names above still count)
        except Exception as e:  # noqa: BLE001 - any other parser failure: refuse
            problems.append(f"OmegaConf's grammar parser fails ({type(e).__name__}): not "
                            "checked")
        else:
            names += _grammar_calls(tree, OmegaConfGrammarParser, problems)
    elif re.search(r"\$\{(?!\s*[\w.\-]+\s*[:}])", s):
        problems.append("an interpolation the scanner cannot parse without OmegaConf")
    for name in dict.fromkeys(names):
        if name not in allowed:
            problems.append(f"${{{name}:...}}: a resolver that can build nodes or run code")
    return list(dict.fromkeys(problems))


def _grammar_calls(tree, P, problems: list) -> list[str]:
    names = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, P.InterpolationResolverContext):
            rn = node.getChild(1)
            if any(isinstance(c, P.InterpolationContext) for c in rn.getChildren()):
                problems.append(f"a resolver name built by interpolation: {rn.getText()!r}")
            else:
                names.append(rn.getText())
        for i in range(node.getChildCount() if hasattr(node, "getChildCount") else 0):
            child = node.getChild(i)
            if hasattr(child, "getChildCount"):
                stack.append(child)
    return names

"""Readings of a blob as a config: JSON, every YAML document, TOML, in every Unicode
encoding ``json`` and ``yaml`` decode from bytes, and the OmegaConf interpolations inside.

Libraries that hand such configs to ``hydra.utils.instantiate`` build whatever callable a
``_target_`` names (NVIDIA NeMo, CVE-2025-23304); ``yaml.unsafe_load`` builds
``!!python/...`` tags; OmegaConf resolvers run when a value is read (``oc.create`` and
``oc.decode`` build new nodes, a ``_target_`` among them; an ``eval`` resolver that the
loading program registered runs code).

YAML is read as an *event stream* (libyaml's ``CParser`` when available), never composed
or constructed: parsing is iterative, so nesting that breaks the pure-Python composer
(``RecursionError``) is read to the end, and a document that breaks after earlier ones
were read is a ``config-error`` finding (fail closed), not "not YAML".

References
----------
* Hydra docs, "Instantiating objects with Hydra" (``_target_``, ``_partial_``).
* OmegaConf docs, "Resolvers" (``oc.create``, ``oc.decode``, ``oc.env``, custom
  resolvers); NVD CVE-2025-23304.
* PyYAML docs (``yaml.parse``, ``CSafeLoader``); RFC 8259 section 8.1 and
  ``json.detect_encoding`` (UTF-8/16/32 from bytes); Python ``tomllib``.

See Also
--------
labkit.supplychain.scanner
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import ast
import codecs
import json
import re

from .blob import Blob
from .findings import Context
from .rules import SAFE_RESOLVERS, target_allowed

__all__ = ["find_targets", "find_resolvers", "read_text_configs", "scan_parsed",
           "json_pairs", "parse_string_config"]

_MAX_STRING_CONFIG = 1 << 20  # a string value re-parsed as a config
_PY_TAG = "tag:yaml.org,2002:python/"
_DIRECTIVE = re.compile(r"(?m)^%")
_MAX_PY_BRACKETS = 2000  # PyYAML's pure-Python parser only below this many { and [
_RESOLVER = re.compile(r"(?<!\\)\$\{\s*([A-Za-z_][\w.\-]*)\s*:")


# --------------------------------------------------------------------------------------
# Parsed values: _target_ finder and string configs
# --------------------------------------------------------------------------------------


def parse_string_config(text: str):
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
        import yaml

        try:
            return yaml.load(s, Loader=_loader())
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
        A parsed JSON/YAML/TOML/literal value.

    Returns
    -------
    list of (str, object)
        ``(key_path, target)`` pairs, sorted by key path.

    Examples
    --------
    >>> find_targets({"model": {"_target_": "a.B", "n": 2}})
    [('model._target_', 'a.B')]
    """
    return sorted(_walk_parsed(obj)[0], key=lambda kv: kv[0])


def _walk_parsed(obj) -> tuple[list, list]:
    """(targets, strings) of a parsed config: ``(path, value)`` pairs."""
    found: list[tuple[str, object]] = []
    strings: list[tuple[str, str]] = []
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
        elif isinstance(node, str):
            strings.append((path, node))
            if depth < 3:
                inner = parse_string_config(node)
                if isinstance(inner, (dict, list, tuple)):
                    stack.append((inner, f"{path}<parsed>", depth + 1))
    return found, strings


def find_resolvers(text: str) -> list[str]:
    """The OmegaConf resolvers an interpolating string calls, in order.

    Examples
    --------
    >>> find_resolvers("${oc.env:HOME}/${oc.create:{a: 1}} and ${model.lr}")
    ['oc.env', 'oc.create']
    """
    return _RESOLVER.findall(text) if "${" in text else []


def _check_strings(ctx: Context, member: str, strings, *, lineno: int | None = None) -> None:
    """Resolver findings: each string's interpolations parsed with OmegaConf's own grammar
    (:func:`~labkit.supplychain.formats.interpolation_problems`, the check
    ``safe_instantiate`` uses too), and oversized strings that look like configs."""
    from .formats import interpolation_problems

    allowed = SAFE_RESOLVERS | ctx.extra_allow
    for where, s in strings:
        at = f" at {where}" if where else ""
        for problem in interpolation_problems(s, allowed):
            head, _, why = problem.partition(": ")
            ctx.add(member, "resolver", f"{head}{at}: {why}" if why else f"{problem}{at}",
                    lineno=lineno)
        if len(s) > _MAX_STRING_CONFIG and _config_like(s):
            ctx.add(member, "budget", f"budget exceeded: a string of {len(s)} characters"
                    f"{at} that may be a config is not parsed", lineno=lineno)


def _config_like(s: str) -> bool:
    head = s[:4096].lstrip()
    return head[:1] in ("{", "[", "(", "!") or ":" in head or "_target_" in s


def _target_ok(ctx: Context, target) -> bool:
    return target_allowed(target, ctx.extra_allow)


def scan_parsed(ctx: Context, member: str, parsed) -> None:
    """Findings for a parsed config: ``_target_`` values and resolver calls."""
    found, strings = _walk_parsed(parsed)
    for key, target in sorted(found, key=lambda kv: kv[0]):
        if not _target_ok(ctx, target):
            ctx.add(member, "target", f"{key} = {target!r}")
    _check_strings(ctx, member, strings)


def json_pairs(pairs):
    """``object_pairs_hook`` that keeps duplicate keys visible (a second ``_target_`` must
    not hide the first)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            out.setdefault("\x00dup", []).append({k: v})
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------
# YAML as events
# --------------------------------------------------------------------------------------


def _loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_events(ctx: Context, member: str, text: str, *, toml: bool = False) -> bool:
    """Walk every document's events with libyaml's parser and, where it stops, with
    PyYAML's pure-Python one (which accepts reserved directives such as ``%FOO`` that
    libyaml rejects): what either loader reads is checked. Returns True when the text is
    YAML with structure. A parse error after a structured document is a ``config-error``
    unless the text is TOML (a YAML loader then fails on it and builds nothing more)."""
    import yaml

    results = [_yaml_events_with(ctx, member, text, _loader())]
    if results[0][0] != "ok" and _loader() is not yaml.SafeLoader and _DIRECTIVE.search(text):
        # libyaml stopped, and the text has directives PyYAML may accept. PyYAML's scanner
        # is quadratic in flow nesting, so it runs only on texts with few brackets.
        if text.count("{") + text.count("[") <= _MAX_PY_BRACKETS:
            results.append(_yaml_events_with(ctx, member, text, yaml.SafeLoader))
        else:
            ctx.add(member, "config-error", "libyaml rejects this YAML and it has too many "
                    "brackets for PyYAML's parser within the budget: not checked")
    ok = [r for r in results if r[0] == "ok"]
    strings = [x for r in results for x in r[2]]
    if ok:
        if not ok[0][1]:
            return False  # a lone scalar is just text (its python tag, if any, is reported)
        ctx.fmt(member, "yaml")
        _after_yaml(ctx, member, strings)
        return True
    best = max(results, key=lambda r: r[1])
    if not best[1]:
        return False
    ctx.fmt(member, "yaml")
    if not toml:
        docs, line = best[1], best[3]
        ctx.add(member, "config-error",
                f"YAML parse error after {docs} document(s)"
                + (f" at line {line}" if line else "")
                + ": the rest is not checked", lineno=line)
    _after_yaml(ctx, member, strings)
    return True


def _yaml_events_with(ctx: Context, member: str, text: str, loader):
    """One parser's pass: ``("ok", structured, strings, None)`` or ``("error",
    structured_documents_read, strings, error_line)``."""
    import yaml

    stack: list[list] = []  # [kind, expecting_key, current_key]
    docs = structured_docs = 0
    structured = False
    strings: list[tuple[str, str, int]] = []
    anchors: dict[str, object] = {}  # anchor -> its scalar value (None for a collection)

    def consumed() -> None:
        if stack and stack[-1][0] == "map":
            stack[-1][1] = not stack[-1][1]

    def is_key() -> bool:
        return bool(stack) and stack[-1][0] == "map" and stack[-1][1]

    def under_target() -> bool:
        return bool(stack) and stack[-1][0] == "map" and not stack[-1][1] \
            and stack[-1][2] == "_target_"

    try:
        for ev in yaml.parse(text, Loader=loader):
            tag = getattr(ev, "tag", None)
            line = ev.start_mark.line + 1 if ev.start_mark is not None else None
            if tag and tag.startswith(_PY_TAG):
                ctx.add(member, "yaml-python-tag",
                        f"{tag.replace('tag:yaml.org,2002:', '!!')} at line {line}",
                        lineno=line)
            if isinstance(ev, yaml.DocumentEndEvent):
                docs += 1
                structured_docs += structured
            elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                structured = True
                if under_target():
                    ctx.add(member, "target", f"_target_ = <{type(ev).__name__[:-10].lower()}>"
                            f" at line {line}", lineno=line)
                key = is_key()
                if ev.anchor is not None:
                    anchors[ev.anchor] = None
                stack.append(["map" if isinstance(ev, yaml.MappingStartEvent) else "seq",
                              True, None, key])
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                if stack:
                    stack.pop()
                if stack and stack[-1][0] == "map":
                    if stack[-1][1]:
                        stack[-1][2] = None  # a complex key
                    consumed()
            elif isinstance(ev, yaml.ScalarEvent):
                if ev.anchor is not None:
                    anchors[ev.anchor] = ev.value
                if is_key():
                    stack[-1][2] = ev.value
                else:
                    if under_target() and not _target_ok(ctx, ev.value):
                        ctx.add(member, "target", f"_target_ = {ev.value!r} at line {line}",
                                lineno=line)
                    if len(ev.value) > 1:
                        strings.append((str(stack[-1][2] or "") if stack else "",
                                        ev.value, line))
                consumed()
            elif isinstance(ev, yaml.AliasEvent):
                if is_key():  # an alias used as a key: the anchored scalar is the key
                    stack[-1][2] = anchors.get(ev.anchor)
                elif under_target():
                    ctx.add(member, "target", f"_target_ = *{ev.anchor} at line {line}",
                            lineno=line)
                consumed()
    except (yaml.YAMLError, ValueError, RecursionError, MemoryError) as e:
        mark = getattr(e, "problem_mark", None)
        return ("error", structured_docs, strings, mark.line + 1 if mark is not None else None)
    return ("ok", structured, strings, None)


def _after_yaml(ctx: Context, member: str, strings) -> None:
    for key, s, line in strings:
        _check_strings(ctx, member, [(key, s)], lineno=line)
        if ":" in s or s.lstrip()[:1] in ("{", "[", "("):
            inner = parse_string_config(s)
            if isinstance(inner, (dict, list, tuple)):
                scan_parsed(ctx, member + "<string>", inner)


# --------------------------------------------------------------------------------------
# Text decoding and the three dialects
# --------------------------------------------------------------------------------------

_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16")]


def _encodings(head: bytes) -> list[str]:
    """The encodings ``json.loads(bytes)`` and ``yaml.safe_load(bytes)`` would use."""
    out = []
    for bom, enc in _BOMS:
        if head.startswith(bom):
            out.append(enc)
            break
    out.append(json.detect_encoding(head))
    out.append("utf-8")
    return list(dict.fromkeys("utf-8-sig" if e == "utf-8" and head.startswith(codecs.BOM_UTF8)
                              else e for e in out))


def _textlike(head: bytes, enc: str) -> str | None:
    """The head decoded, if it looks like text in ``enc`` (a cut character at the end is
    fine); None otherwise."""
    try:
        text = codecs.getincrementaldecoder(enc)("strict").decode(head, final=False)
    except (UnicodeDecodeError, LookupError):
        return None
    if not text or "\x00" in text:
        return None
    bad = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\x0c")
    return text if bad * 20 <= len(text) else None


def read_text_configs(ctx: Context, blob: Blob, member: str) -> None:
    """JSON, YAML and TOML readings under every encoding the text could be in."""
    head = blob.head(4096)
    candidates = [e for e in _encodings(head) if _textlike(head, e) is not None]
    if not candidates:
        return
    if blob.size > ctx.budget.max_text:
        ctx.fmt(member, "text")
        ctx.add(member, "budget", f"budget exceeded: a text of {blob.size} bytes (over "
                f"{ctx.budget.max_text}) is not parsed as JSON/YAML/TOML")
        return
    raw = blob.head(blob.size)
    done = set()
    for enc in candidates:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        text = text.lstrip("\ufeff")
        if text in done:
            continue
        done.add(text)
        if enc not in ("utf-8", "utf-8-sig"):
            ctx.fmt(member, "text")  # read, as text in another encoding (below)
        _read_text(ctx, member if enc in ("utf-8", "utf-8-sig") else f"{member}<{enc}>",
                   text)


def _read_text(ctx: Context, member: str, text: str) -> None:
    from . import formats

    s = text.lstrip(" \t\r\n")
    parsed_json = False
    if s[:1] in ("{", "["):
        try:
            parsed = json.loads(s, object_pairs_hook=json_pairs)
            parsed_json = True
        except RecursionError:
            ctx.fmt(member, "json")
            ctx.add(member, "config-error", "JSON nested deeper than the json module parses: "
                    "read as YAML events instead")
        except ValueError:
            pass
        if parsed_json:
            ctx.fmt(member, "json")
            scan_parsed(ctx, member, parsed)
            formats.read_json_formats(ctx, member, parsed)
    toml = _parse_toml(text) if ("=" in text or "[" in text) else None
    if not parsed_json:
        _yaml_events(ctx, member, text, toml=toml is not None)
    if toml is not None:
        ctx.fmt(member, "toml")
        scan_parsed(ctx, member, toml)
    formats.read_text_formats(ctx, member, text)
    ctx.fmt(member, "text")


def _parse_toml(text: str) -> dict | None:
    """``text`` as a non-empty TOML document (``tomllib``), else None. A file starting
    with a ``[table]`` line is TOML, not broken YAML."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        return None
    try:
        parsed = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    return parsed or None

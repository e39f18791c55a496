"""What the scanner reports, and the budget that bounds its work.

:class:`Finding` and :class:`ScanReport` are the public results; :class:`ScanBudget` is the
size/depth budget (exceeding it is a ``budget`` finding, never "clean"); ``Context`` is the
scanner's private state for one file.

See Also
--------
labkit.supplychain.scanner
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Finding", "ScanReport", "ScanBudget", "KINDS"]

KINDS: dict[str, str] = {
    "global": "A pickle imports a name outside the allow-list (with or without a call).",
    "unknown-global": "A STACK_GLOBAL whose module or name cannot be worked out statically.",
    "extension": "An EXT1/EXT2/EXT4 opcode: a name from the copyreg extension registry.",
    "malformed-pickle": "A pickle (a protocol header, or a STOP reached) that the unpickler "
                        "rejects part-way, in its first stream or in one stacked after "
                        "it: what ran before the error is not a safe load.",
    "method-call": "A pickle opcode (BUILD, SETITEM(S), APPEND(S), ADDITEMS) that calls a "
                   "method of an object that is not a plain container of an allowed type.",
    "unmodelled": "Part of a pickle that the scanner cannot model (data a loader reads "
                  "from inside the stream); the rest is not vouched for.",
    "target": "A config names a _target_ (a callable to build) outside the allow-list.",
    "resolver": "An OmegaConf interpolation calls a resolver that can build nodes or run "
                "code (anything outside a small read-only set).",
    "yaml-python-tag": "A YAML !!python/... tag: yaml.unsafe_load builds or calls it.",
    "config-error": "A config that parses part-way (a later YAML document is broken, or "
                    "it is nested beyond a parser's limit): the rest is not vouched for.",
    "malformed": "A container header (npy, safetensors) that its loader's parser rejects.",
    "unreadable-member": "An archive member or compressed stream that cannot be read "
                         "(corrupt, truncated, a link, an unsupported method).",
    "ambiguous-container": "An archive that two readers read differently (data before it, "
                           "end records that disagree, duplicate names, members only a "
                           "streaming reader sees): the scanner cannot know which a loader "
                           "reads.",
    "path-escape": "An archive member whose path leaves the extraction folder (absolute, "
                   "'..'): extracting it writes elsewhere.",
    "budget": "The file exceeds the scanner's size/depth budget: not checked to the end.",
    "unreadable": "The input itself could not be opened or read.",
    "unverified": "Bytes no reader of the scanner identifies or reads to the end (an unknown "
                  "format, a 7-Zip archive, an HDF5 file without a readable model config, "
                  "an optional reader that is not installed): not vouched for, never clean.",
    "code": "A model format's own code hook: a Keras layer, module or function outside the "
            "allow-list (Lambda, TorchModuleWrapper, TFSMLayer), a skops node that calls a "
            "function or method, a TorchServe handler, a Hugging Face auto_map "
            "(trust_remote_code), Python source in a model archive.",
    "template": "A Jinja chat template that reaches Python internals (dunder attributes, "
                "the attr filter, cycler/joiner/namespace/lipsum globals): server-side "
                "template injection when rendered outside a sandbox.",
    "template-trigger": "A chat template that branches on the text of a message: "
                        "instructions that appear only for some inputs (review it).",
    "external-path": "An ONNX tensor whose external data location is absolute or leaves "
                     "the model folder: loading reads (or a converter writes) other files.",
}
"""Every finding kind with a one-line meaning (one SARIF rule each)."""


@dataclass(frozen=True)
class Finding:
    """One reason to distrust a file.

    Attributes
    ----------
    path : str
        The file on disk (or the name given to :func:`~labkit.supplychain.scanner.scan_bytes`).
    member : str
        Where inside it: archive members joined by ``!``, wrappers as ``<gzip>`` (``""``
        for the file itself).
    kind : str
        A key of :data:`KINDS`.
    detail : str
        Human-readable detail, e.g. the imported name.
    offset : int or None
        Byte offset inside ``member`` (pickle opcodes, headers), when known.
    lineno : int or None
        1-based line inside ``member`` (configs), when known.
    """

    path: str
    member: str
    kind: str
    detail: str
    offset: int | None = None
    lineno: int | None = None

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
        ``member=format`` for every reading that applied (a polyglot has several).
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
    def unverified(self) -> bool:
        """True when every finding is ``unverified``: nothing suspicious was seen, but part
        of the file is in no format the scanner reads (it is not clean either)."""
        return bool(self.findings) and all(f.kind == "unverified" for f in self.findings)

    @property
    def verdict(self) -> str:
        """``"unreadable"``, ``"flagged"``, ``"unverified"`` or ``"clean"``."""
        if self.unreadable:
            return "unreadable"
        if self.unverified:
            return "unverified"
        return "flagged" if self.findings else "clean"

    def __repr__(self) -> str:
        return (f"ScanReport(path={self.path!r}, verdict={self.verdict!r}, "
                f"findings={len(self.findings)})")


@dataclass(frozen=True)
class ScanBudget:
    """Bounds on the scanner's work for one file; exceeding one is a ``budget`` finding.

    Attributes
    ----------
    max_depth : int
        Containers and wrappers nested inside each other.
    max_bytes : int
        Bytes produced by decompression and archive extraction, all members together
        (a zip bomb stops here). ``None``: ``max(4 GiB, 32 x the file size)``.
    max_text : int
        Bytes of one config parsed as JSON/YAML/TOML (configs are small).
    max_header : int
        Bytes of one safetensors/npy header held in memory.
    max_line : int
        One text argument of a protocol-0 pickle opcode.
    """

    max_depth: int = 8
    max_bytes: int | None = None
    max_text: int = 64 << 20
    max_header: int = 256 << 20
    max_line: int = 16 << 20

    def bytes_for(self, size: int) -> int:
        """The byte budget for an input of ``size`` bytes."""
        if self.max_bytes is not None:
            return self.max_bytes
        return max(4 << 30, 32 * size)


class BudgetExceeded(Exception):
    """Raised inside the scanner when a :class:`ScanBudget` bound is reached."""


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def shown(name: str) -> str:
    """A dotted name as is, anything odder as its repr."""
    return name if _IDENT.match(name) else repr(name)


@dataclass
class Context:
    """The scanner's state for one file (private)."""

    path: str
    allow: frozenset[str]
    extra_allow: frozenset[str]
    budget: ScanBudget
    byte_budget: int
    findings: list[Finding] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    seen: set = field(default_factory=set)
    _formats: set = field(default_factory=set)  # the same entries, for O(1) look-ups
    _read_as: set = field(default_factory=set)  # members with at least one format
    produced: int = 0  # bytes decompressed / extracted so far
    stats: dict = field(default_factory=lambda: {"decompressed": 0, "members": 0,
                                                 "pickle_ops": 0, "readings": 0})
    closers: list = field(default_factory=list)
    scan_blob: object = None  # the dispatcher, set by scanner.py: (ctx, blob, member, depth)
    scan_pickle: object = None  # the pickle reading: (ctx, blob, member, depth, offset=)

    def add(self, member: str, kind: str, detail: str, *, offset: int | None = None,
            lineno: int | None = None) -> None:
        key = (member, kind, detail)
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.append(Finding(self.path, member, kind, detail, offset, lineno))

    def fmt(self, member: str, name: str) -> None:
        entry = f"{member or '-'}={name}"
        if entry not in self._formats:
            self._formats.add(entry)
            self._read_as.add(member)
            self.formats.append(entry)

    def has_format(self, member: str) -> bool:
        """Did any reading recognise ``member`` (constant time: a zip of 50,000 members
        must not cost 50,000 squared string comparisons)?"""
        return member in self._read_as

    def charge(self, n: int) -> None:
        """Count ``n`` produced bytes against the budget."""
        self.produced += n
        if self.produced > self.byte_budget:
            raise BudgetExceeded(f"budget exceeded: more than {self.byte_budget} bytes "
                                 "decompressed or extracted")

    def close(self) -> None:
        for c in reversed(self.closers):
            try:
                c.close()
            except OSError:  # pragma: no cover - closing a temp file
                pass
        self.closers.clear()

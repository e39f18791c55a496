"""Lesson 6, poisoned metadata in the ML supply chain: the notebook's tables, its demos and
its self-checking exercises.

The methods are the scanner product :mod:`labkit.supplychain` (``python -m labkit scan``):
the payload corpus (:mod:`~labkit.supplychain.payloads`), the sandboxed and the safe loaders
(:mod:`~labkit.supplychain.loaders`), the scanner and pinning. This module only puts them
together the way the notebook teaches them: plain-text tables (so nbval can compare them),
the config defence ladder, the tampered-shard demo, and the exercises ``l6_allow_list``,
``l6_scan_allow`` and ``l6_tampered`` in the lab's one exercise registry (learners use them
through ``lk.checks.check(name, answer)``). A wrong answer never runs a payload in the
kernel: loads happen in the sandboxed subprocess.

See Also: notebooks/06_supply_chain.ipynb
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..supplychain.compare import compare, find_tools
from ..supplychain.loaders import (POLICIES, BlockedTarget, load_artifacts, load_in_subprocess,
                                   read_config, safe_instantiate)
from ..supplychain.output import Table, table
from ..supplychain.payloads import ZOO_TARGETS, Artifact, benign_checkpoint, build, make_workdir
from ..supplychain.pinning import PinError, sha256_file, verify, verify_all, write_lock
from ..supplychain.scanner import ScanReport, find_targets, pickle_ops, scan_file
from .exercises import exercise

__all__ = ["Table", "describe", "scan_table", "scan_summary", "ladder", "LADDER_CONFIGS",
           "third_party_table", "opcode_table", "fire_table", "compare_loaders",
           "readings_table", "try_instantiate", "tamper_demo", "CONFIG_BENIGN",
           "CONFIG_MALICIOUS", "hub_publish", "hub_delete", "hub_download",
           "namespace_reuse_demo"]


# ---- tables for the notebook --------------------------------------------------------

_BYTE = re.compile(r" \(byte \d+\)|@\d+")


def _summary(report: ScanReport, width: int = 70) -> str:
    if not report.findings:
        return "-"
    f = report.findings[0]
    where = f"{f.member}: " if f.member else ""
    text = _BYTE.sub("", f"{f.kind}: {where}{f.detail}")  # offsets vary with temp paths
    more = f" (+{len(report.findings) - 1})" if len(report.findings) > 1 else ""
    if len(text) + len(more) > width:
        text = text[: width - len(more) - 3] + "..."
    return text + more


def scan_table(artifacts: Sequence[Artifact], *, allow=ZOO_TARGETS) -> Table:
    """Scan each artifact and tabulate: name, truth, verdict, first finding.

    Temp paths are not shown (so the table is the same on every machine).
    """
    rows = []
    for a in artifacts:
        r = scan_file(a.path, allow=allow)
        rows.append({"artifact": a.name, "malicious": a.malicious, "verdict": r.verdict,
                     "first finding": _summary(r).replace(str(a.path.parent), "<tmp>")})
    return table(rows)


def scan_summary(artifacts: Sequence[Artifact], *, allow=ZOO_TARGETS) -> dict:
    """Flag rates of the scanner on a corpus, and whether any canary fired meanwhile.

    Canary markers left by earlier (deliberate) loads are set aside first, so
    ``canaries_fired_during_scan`` counts only markers that scanning created.

    Returns
    -------
    dict
        ``malicious_flagged``, ``n_malicious``, ``benign_flagged``, ``n_benign``,
        ``canaries_fired_during_scan``.
    """
    for a in artifacts:
        if a.marker is not None and a.marker.exists():
            a.marker.unlink()  # re-arm: markers from earlier loads are not scan results
    verdicts = [(a.malicious, scan_file(a.path, allow=allow).flagged) for a in artifacts]
    return {"malicious_flagged": sum(m and f for m, f in verdicts),
            "n_malicious": sum(m for m, _ in verdicts),
            "benign_flagged": sum((not m) and f for m, f in verdicts),
            "n_benign": sum(not m for m, _ in verdicts),
            "canaries_fired_during_scan": sum(bool(a.marker and a.marker.exists())
                                              for a in artifacts)}


LADDER_CONFIGS: tuple[str, ...] = ("yaml_allowed_targets", "os_system", "yaml_target_open",
                                   "reexport_target", "alias_target")
"""Configs the ladder runs: benign, os.system, an arbitrary function, a re-export, an alias."""

_RUNGS = {"config": "hydra block-list", "config_prefix": "prefix allow-list",
          "config_exact": "exact allow-list"}


def _os_system_config(root: Path) -> Artifact:
    folder = root / "os_system"
    folder.mkdir(parents=True, exist_ok=False)
    p = folder / "shell.yaml"
    # Never runs: Hydra's block-list refuses it, and the sandbox refuses processes anyway.
    p.write_text("name: tiny\nmodel:\n  _target_: os.system\n  _args_: ['true']\n")
    return Artifact("os_system", p, "config", True, "config", None,
                    "_target_: os.system (what Hydra's block-list is built for)")


def ladder(root: str | os.PathLike, *, rng=None) -> Table:
    """Run the config defence ladder in the sandbox and tabulate who stops what.

    Rungs: ``config`` (plain ``hydra.utils.instantiate``, whose block-list refuses
    ``os.system``), ``config_prefix`` (the vendors' fix: every ``_target_`` must start
    with ``labkit.supplychain.zoo.``), ``config_exact``
    (:func:`~labkit.supplychain.loaders.safe_instantiate` with
    :data:`~labkit.supplychain.payloads.ZOO_TARGETS`). Cells are ``loaded``, ``blocked``
    or ``FIRED``.

    Parameters
    ----------
    root : path-like
        A temp folder this lesson made.
    rng : int or numpy.random.Generator, optional
    """
    root = Path(root)
    arts = [_os_system_config(root) if n == "os_system" else build(n, root, rng=rng)
            for n in LADDER_CONFIGS]
    items = [(a.name, a.path, pol, a.marker) for a in arts for pol in POLICIES]
    outcomes = load_in_subprocess(items, allow=ZOO_TARGETS)
    rows = []
    for i, a in enumerate(arts):
        row = {"config": a.name}
        for j, pol in enumerate(POLICIES):
            row[_RUNGS[pol]] = outcomes[i * len(POLICIES) + j].verdict
        rows.append(row)
    return table(rows)


def third_party_table(artifacts: Sequence[Artifact], *, timeout: float = 60) -> Table:
    """What picklescan / modelscan / fickling / ModelAudit say about each artifact, next to ``labkit``,
    when they are installed (next to this Python, or on ``PATH``).

    The rows are :func:`labkit.supplychain.compare.compare`'s (the scanner's own benchmark):
    verdicts come from exit codes, 0 ``clean``, 1 ``flagged``; modelscan's 3 ("no
    supported files") is ``skipped``; a crash or any other code is ``error``. Tools run
    with their default settings (picklescan without ``--strict``). With none installed
    the table has one note row.

    Notes
    -----
    The lesson's canaries call ``open`` / ``Path.write_text`` rather than ``os.system``;
    scanners built on block-lists of dangerous names can pass them, which is the same
    weakness as Hydra's block-list, not proof that they would miss a real payload.
    """
    tools = find_tools(Path(sys.executable).parent.parent)
    if not tools:
        return table([{"note": "none of picklescan, modelscan, fickling, modelaudit is installed"}])
    return table(compare(artifacts, tools, timeout=timeout))


def opcode_table(data: bytes, *, limit: int = 20, width: int = 40) -> Table:
    """The first ``limit`` opcodes of a pickle: byte offset, opcode, argument."""
    rows = []
    for pos, name, arg in pickle_ops(data, limit=limit):
        text = "" if arg is None else repr(arg)
        rows.append({"byte": pos, "opcode": name,
                     "argument": text if len(text) <= width else text[: width - 3] + "..."})
    return table(rows)


def fire_table(artifacts: Sequence[Artifact]) -> Table:
    """Load each artifact with its own (vulnerable) loader in the sandbox; one row each."""
    outcomes = load_artifacts(artifacts)
    return table([{"artifact": a.name, "carrier": a.carrier, "loader": a.loader,
                   "result": o.verdict} for a, o in zip(artifacts, outcomes)])


def compare_loaders(artifacts: Sequence[Artifact], loaders: Sequence[str], *,
                    allow=ZOO_TARGETS) -> Table:
    """Each artifact through each loader (one sandboxed child): ``loaded``, ``blocked``,
    ``error`` or ``FIRED``. An ``error`` after ``FIRED`` is still ``FIRED``."""
    items = [(a.name, a.path, ld, a.marker) for a in artifacts for ld in loaders]
    outs = load_in_subprocess(items, allow=allow)
    rows = []
    for i, a in enumerate(artifacts):
        row = {"artifact": a.name}
        for j, ld in enumerate(loaders):
            row[ld] = outs[i * len(loaders) + j].verdict
        rows.append(row)
    return table(rows)


def describe(artifacts: Sequence[Artifact]) -> Table:
    """Name, carrier, victim loader and trick of each artifact."""
    return table([{"artifact": a.name, "carrier": a.carrier, "loader": a.loader,
                   "trick": a.description} for a in artifacts])


_READING_KINDS = {
    "pickle": {"global", "unknown-global", "extension", "malformed-pickle", "unmodelled"},
    "yaml": {"target", "resolver", "yaml-python-tag", "config-error"},
    "json": {"target", "resolver", "config-error"}, "toml": {"target", "resolver"},
}
_READERS = {"pickle": "pickle.load, numpy.load(allow_pickle=True), torch.load",
            "yaml": "yaml.safe_load -> a config for instantiate",
            "json": "json.load -> a config for instantiate",
            "toml": "tomllib.load -> a config for instantiate",
            "tar": "tarfile.open", "zip": "zipfile / numpy.load / torch.load",
            "npy": "numpy.load", "safetensors": "safetensors.safe_open"}


def readings_table(path: str | os.PathLike, *, allow=ZOO_TARGETS, width: int = 48) -> Table:
    """Each format the scanner read the file as (top level only), who reads it that way,
    and what that reading found: one file, several readings for a polyglot."""
    r = scan_file(path, allow=allow)
    rows = []
    for entry in r.formats:
        member, _, fmt = entry.partition("=")
        if member != "-" or fmt == "text":
            continue
        kinds = _READING_KINDS.get(fmt, set())
        found = [f for f in r.findings if not f.member and f.kind in kinds]
        text = "; ".join(_BYTE.sub("", f"{f.kind}: {f.detail}") for f in found) or "-"
        rows.append({"reading": fmt, "who reads it this way": _READERS.get(fmt, "-"),
                     "finding": text if len(text) <= width else text[: width - 3] + "..."})
    return table(rows)


def try_instantiate(config: Any, *, allow) -> str:
    """Run :func:`~labkit.supplychain.loaders.safe_instantiate` and describe the result in
    one line: ``"built: <repr>"`` or ``"BlockedTarget: <reason>"``."""
    try:
        built = safe_instantiate(config, allow=allow)
    except BlockedTarget as e:
        return f"BlockedTarget: {e}"
    text = repr(built).replace("\n", " ")
    return "built: " + " ".join(text.split())


def tamper_demo(root: str | os.PathLike, *, rng=0, tampered: int = 1) -> Path:
    """Make three checkpoints ``shard_0.pt`` ... ``shard_2.pt``, pin them in
    ``root/models.lock``, then flip one bit of shard ``tampered``.

    Returns the lock file. Which file changed is what ``l6_tampered`` asks.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = [benign_checkpoint(root / f"shard_{i}.pt", rng=rng + i) for i in range(3)]
    lock = write_lock(paths, root / "models.lock")
    data = bytearray(paths[tampered].read_bytes())
    data[-200] ^= 0x01  # one bit in a tensor: loads fine, still not what was reviewed
    paths[tampered].write_bytes(bytes(data))
    return lock


# ---- names are not trust: namespace reuse on a (local, simulated) model hub -----------


def hub_publish(hub: str | os.PathLike, repo_id: str, src: str | os.PathLike) -> str:
    """Publish ``src`` as ``model.pt`` of ``repo_id`` (``"author/name"``) on a local
    folder that plays a model hub; returns the new revision id (like a commit id: a hash
    of the content) and points the repository's ``main`` at it."""
    data = Path(src).read_bytes()
    import hashlib

    rev = hashlib.sha256(repo_id.encode() + b"\0" + data).hexdigest()[:12]
    folder = Path(hub) / repo_id
    (folder / rev).mkdir(parents=True, exist_ok=True)
    (folder / rev / "model.pt").write_bytes(data)
    (folder / "main").write_text(rev)
    return rev


def hub_delete(hub: str | os.PathLike, repo_id: str) -> None:
    """The author deletes the repository (or the whole account): the name is free again."""
    shutil.rmtree(Path(hub) / repo_id)


def hub_download(hub: str | os.PathLike, repo_id: str, cache: str | os.PathLike, *,
                 revision: str = "main") -> Path:
    """Download ``repo_id`` at ``revision`` (``"main"``: whatever the name points at now)
    into ``cache/<author>/<name>/model.pt``, as hub clients cache by name. Raises
    FileNotFoundError when the repository or the revision does not exist."""
    folder = Path(hub) / repo_id
    rev = (folder / "main").read_text() if revision == "main" else revision
    src = folder / rev / "model.pt"
    if not src.is_file():
        raise FileNotFoundError(f"{repo_id} has no revision {revision!r}")
    dest = Path(cache) / repo_id / "model.pt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes())
    return dest


def namespace_reuse_demo(root: str | os.PathLike, *, rng=0) -> Table:
    """A model name that changes hands, and what revision and hash pinning do about it.

    ``alice/tiny-net`` is published, reviewed (scanned, loaded safely) and pinned: the
    revision id is written down and the downloaded file's SHA-256 goes into a lock file.
    Then alice deletes her account, and someone else registers the same name and
    publishes a checkpoint with a canary payload (Unit 42, 2025: model namespace reuse on
    public hubs). Three ways to ask for the model again, one row each. Nothing is loaded:
    each row says what the request would hand to your loader.

    Parameters
    ----------
    root : path-like
        A temp folder this lesson made (the hub, the cache and the lock live in it).
    rng : int, optional
        Seed of the benign checkpoint.
    """
    root = Path(root)
    hub, cache = root / "hub", root / "cache"
    root.mkdir(parents=True, exist_ok=True)
    original = benign_checkpoint(root / "alice_model.pt", rng=rng)
    reviewed_rev = hub_publish(hub, "alice/tiny-net", original)
    reviewed = hub_download(hub, "alice/tiny-net", cache, revision=reviewed_rev)
    lock = write_lock([reviewed], cache / "models.lock")
    reviewed_sha = sha256_file(reviewed)

    hub_delete(hub, "alice/tiny-net")                       # the name is free ...
    payload = build("torch_reduce", root / "mallory", rng=rng)
    hub_publish(hub, "alice/tiny-net", payload.path)         # ... and taken by someone else

    rows = []
    got = hub_download(hub, "alice/tiny-net", cache)
    rows.append({"request": "alice/tiny-net (latest)", "you get": "the new owner's file",
                 "same sha256 as reviewed": sha256_file(got) == reviewed_sha,
                 "scan": scan_file(got).verdict, "outcome": "handed to your loader"})
    try:
        hub_download(hub, "alice/tiny-net", cache, revision=reviewed_rev)
        outcome, you_get = "loaded", "the reviewed file"
    except FileNotFoundError:
        outcome, you_get = "refused: revision not found", "nothing"
    rows.append({"request": "alice/tiny-net @ reviewed revision", "you get": you_get,
                 "same sha256 as reviewed": "-", "scan": "-", "outcome": outcome})
    got = hub_download(hub, "alice/tiny-net", cache)
    try:
        verify(got, lock)
        outcome = "loaded"
    except PinError:
        outcome = "refused: sha256 differs from the lock"
    rows.append({"request": "alice/tiny-net (latest) + lock check", "you get": "the new "
                 "owner's file", "same sha256 as reviewed": sha256_file(got) == reviewed_sha,
                 "scan": scan_file(got).verdict, "outcome": outcome})
    if payload.marker is not None and payload.marker.exists():  # pragma: no cover
        raise RuntimeError("the canary fired: nothing in this demo may load the payload")
    return table(rows)


# ---- exercises ------------------------------------------------------------------------

CONFIG_BENIGN = ("yaml_allowed_targets", "safetensors_meta_allowed")
"""The benign configs an allow-list must build (exercises ``l6_allow_list``, ``l6_scan_allow``)."""
CONFIG_MALICIOUS = ("yaml_target_open", "yaml_target_write_text", "json_hf_config",
                    "safetensors_meta_json", "safetensors_meta_literal", "nemo_yaml",
                    "partial_factory", "reexport_target", "alias_target")
"""The poisoned configs it must block."""

_ZOO = "{" + ", ".join(repr(n) for n in sorted(ZOO_TARGETS)) + "}"


def _names(answer) -> list[str] | None:
    """The answer as a list of names, or None when it is not a collection of strings."""
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        return None
    names = list(answer)
    return names if all(isinstance(n, str) for n in names) else None


def _config_artifacts(root: Path) -> list[Artifact]:
    return [build(n, root, rng=0) for n in CONFIG_BENIGN + CONFIG_MALICIOUS]


@exercise("l6_allow_list",
          hint="List exactly the names the benign configs use, no more: "
               "sc.scanner.find_targets(sc.read_config(path)) shows them.",
          hints=("Collect {t for _, t in sc.scanner.find_targets(sc.read_config(path))} over the "
                 "benign configs only: that set, written out name by name, is the allow-list.",),
          answer_type="a set of exact dotted names (strings), e.g. {'pkg.mod.Class'}",
          solution=f"MY_ALLOW = {_ZOO}",
          answer=lambda: set(ZOO_TARGETS), wrong=lambda: {"labkit.supplychain.zoo.*"})
def _l6_allow_list(answer):
    """Does ``safe_instantiate(cfg, allow=answer)`` build every benign config and block
    every poisoned one, with no canary firing? (Loads run in the sandboxed subprocess.)"""
    names = _names(answer)
    if names is None:
        return False, "the allow-list must be a set (or list) of strings, e.g. {'pkg.mod.Class'}"
    if any("*" in n or n.endswith(".") for n in names):
        return False, "exact names only; a wildcard or prefix is what the attacker wants"
    root = make_workdir("labkit-ex1-")
    try:
        arts = _config_artifacts(root)
        # static feedback first (reading configs is safe: yaml.safe_load / json)
        used = {t for a in arts if not a.malicious for _, t in find_targets(read_config(a.path))}
        missing, extra = sorted(used - set(names)), sorted(set(names) - used)
        if missing or extra:
            msg = []
            if missing:
                msg.append(f"the benign configs also need {', '.join(missing)}")
            if extra:
                msg.append(f"{', '.join(extra)} is not used by any benign config: every "
                           "extra name is attack surface")
            return False, "; ".join(msg)
        outs = load_in_subprocess([(a.name, a.path, "config_exact", a.marker) for a in arts],
                                  allow=names)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    problems = []
    for a, o in zip(arts, outs):
        if a.malicious and o.verdict != "blocked":
            problems.append(f"  {a.name}: {o.verdict} (should be blocked)")
        if not a.malicious and o.verdict != "loaded":
            problems.append(f"  {a.name}: {o.verdict} {o.error} (should load)")
    if problems:
        return False, "\n" + "\n".join(problems)
    return True, (f"{len(CONFIG_BENIGN)} benign configs built, "
                  f"{len(CONFIG_MALICIOUS)} poisoned configs blocked, no canary fired")


@exercise("l6_scan_allow",
          hint="The scanner has no default _target_ allow-list: it needs the same exact names "
               "the benign configs use, and nothing broader.",
          hints=("It is the same set of names as your MY_ALLOW (the allow-list exercise).",),
          answer_type="a set of exact dotted names (strings)",
          solution=f"SCAN_ALLOW = {_ZOO}",
          answer=lambda: set(ZOO_TARGETS), wrong=lambda: {"labkit.supplychain.zoo.TinyNet"})
def _l6_scan_allow(answer):
    """With ``answer`` passed to the scanner (``--allow``), do the benign configs scan
    clean while every poisoned config stays flagged?"""
    names = _names(answer)
    if names is None:
        return False, "SCAN_ALLOW must be a set (or list) of strings"
    root = make_workdir("labkit-ex2-")
    try:
        verdicts = {a.name: (a.malicious, scan_file(a.path, allow=names).verdict)
                    for a in _config_artifacts(root)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    missed = [n for n, (bad, v) in verdicts.items() if bad and v != "flagged"]
    noisy = [n for n, (bad, v) in verdicts.items() if not bad and v != "clean"]
    if missed or noisy:
        msg = []
        if noisy:
            msg.append(f"benign still flagged: {', '.join(noisy)}")
        if missed:
            msg.append(f"malicious now passes: {', '.join(missed)}")
        return False, "; ".join(msg)
    return True, "benign configs clean, every poisoned config still flagged"


def _tampered_answer(name: str):
    """``(name, lock)`` for a fresh :func:`tamper_demo` (shard 1 changed) in a temp folder."""
    return lambda: (name, tamper_demo(make_workdir("labkit-ex3-"), rng=0))


@exercise("l6_tampered",
          hint="lk.supplychain.pinning.verify_all(LOCK) says which pinned file no longer matches.",
          hints=("verify_all(LOCK) returns {file name: still matches}; the answer is the one "
                 "name whose value is False.",),
          answer_type='a file name as a string, e.g. "shard_0.pt" (set TAMPERED; checked against your LOCK)',
          solution="TAMPERED = [k for k, ok in lk.supplychain.pinning.verify_all(LOCK).items() "
                   "if not ok][0]",
          answer=_tampered_answer("shard_1.pt"), wrong=_tampered_answer("shard_0.pt"))
def _l6_tampered(answer):
    """``answer`` is ``(TAMPERED, LOCK)``: the file name (e.g. ``"shard_0.pt"``) that no
    longer matches the learner's own lock file from :func:`tamper_demo`."""
    name, lock = answer if isinstance(answer, tuple) and len(answer) == 2 else (answer, None)
    if lock is None:
        return False, "answer with (TAMPERED, LOCK): the file name and the lock file from tamper_demo"
    if name is None or name is Ellipsis:
        return False, "set TAMPERED to the file name, e.g. 'shard_0.pt'"
    bad = sorted(k for k, ok in verify_all(lock).items() if not ok)
    if [str(name)] == bad:
        return True, f"{name} changed after it was pinned; refuse to load it"
    return False, f"{name!r} still matches its pinned digest (or is not pinned)"

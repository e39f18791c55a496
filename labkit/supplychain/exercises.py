"""Self-checking exercises for notebooks/06_supply_chain.ipynb.

Each ``check_*`` takes the learner's answer, prints a clear pass / not-yet message and
returns a bool; it never raises on an unsolved placeholder (``None`` or ``...``), so the
notebook runs top to bottom. ``hint(n)`` and ``solution(n)`` print help for exercise n.

Exercise 1: write the exact allow-list for :func:`~labkit.supplychain.safe_instantiate`
that builds the lesson's benign configs and blocks every poisoned config (checked in the
sandboxed subprocess, so a wrong answer never runs a payload in your kernel).

Exercise 2: choose ``allow`` names for the scanner (``python -m labkit scan --allow``)
so the benign configs scan clean while every malicious config is still flagged.

Exercise 3: pin the benign checkpoint in a lock file, then find which pinned file was
tampered with.

See Also
--------
notebooks/06_supply_chain.ipynb
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

from .loaders import load_in_subprocess, read_config
from .payloads import ZOO_TARGETS, build, make_workdir
from .scanner import find_targets, scan_file

__all__ = ["check_allow_list", "check_scan_allow", "check_tampered", "tamper_demo",
           "hint", "solution", "HINTS", "SOLUTIONS", "CONFIG_BENIGN", "CONFIG_MALICIOUS"]

CONFIG_BENIGN = ("yaml_allowed_targets", "safetensors_meta_allowed")
CONFIG_MALICIOUS = ("yaml_target_open", "yaml_target_write_text", "json_hf_config",
                    "safetensors_meta_json", "safetensors_meta_literal", "nemo_yaml",
                    "partial_factory", "reexport_target", "alias_target")


def _unsolved(answer) -> bool:
    return answer is None or answer is Ellipsis


def _names(answer) -> list[str] | None:
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        return None
    names = list(answer)
    return names if all(isinstance(n, str) for n in names) else None


def check_allow_list(allow, *, rng=0) -> bool:
    """Exercise 1: does ``safe_instantiate(cfg, allow=allow)`` load every benign config
    and block every malicious one (with no canary firing)?

    Parameters
    ----------
    allow : set of str
        Your exact allow-list of ``_target_`` names.
    rng : int
        Seed for the artifacts' tensors.

    Returns
    -------
    bool
    """
    if _unsolved(allow):
        print("not yet: set MY_ALLOW to a set of exact target names, e.g. {'pkg.mod.Class'}")
        return False
    names = _names(allow)
    if names is None:
        print("not yet: the allow-list must be a set (or list) of strings")
        return False
    if any("*" in n or n.endswith(".") for n in names):
        print("not yet: exact names only; a wildcard or prefix is what the attacker wants")
        return False
    root = make_workdir("labkit-ex1-")
    try:
        arts = [build(n, root, rng=rng) for n in CONFIG_BENIGN + CONFIG_MALICIOUS]
        # static feedback first (reading configs is safe: yaml.safe_load / json)
        used = {t for a in arts if not a.malicious
                for _, t in find_targets(read_config(a.path))}
        missing, extra = sorted(used - set(names)), sorted(set(names) - used)
        if missing or extra:
            msg = []
            if missing:
                msg.append(f"the benign configs also need {', '.join(missing)}")
            if extra:
                msg.append(f"{', '.join(extra)} is not used by any benign config: every "
                           "extra name is attack surface")
            print("not yet: " + "; ".join(msg))
            return False
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
        print("not yet:\n" + "\n".join(problems))
        return False
    print(f"pass: {len(CONFIG_BENIGN)} benign configs built, "
          f"{len(CONFIG_MALICIOUS)} poisoned configs blocked, no canary fired")
    return True


def check_scan_allow(allow, *, rng=0) -> bool:
    """Exercise 2: with ``allow`` added, do the benign configs scan clean while all
    malicious configs stay flagged?

    Parameters
    ----------
    allow : set of str
        Exact names passed to the scanner (``--allow``).
    """
    if _unsolved(allow):
        print("not yet: set SCAN_ALLOW to the exact names the benign configs use")
        return False
    names = _names(allow)
    if names is None:
        print("not yet: SCAN_ALLOW must be a set (or list) of strings")
        return False
    root = make_workdir("labkit-ex2-")
    try:
        arts = [build(n, root, rng=rng) for n in CONFIG_BENIGN + CONFIG_MALICIOUS]
        verdicts = {a.name: (a.malicious, scan_file(a.path, allow=names).verdict)
                    for a in arts}
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
        print("not yet: " + "; ".join(msg))
        return False
    print("pass: benign configs clean, every poisoned config still flagged")
    return True


def tamper_demo(root: str | Path, *, rng=0, tampered: int = 1) -> Path:
    """Make three checkpoints, pin them in ``root/models.lock``, then change one.

    Returns the lock file. Which file changed is what exercise 3 asks.
    """
    from .payloads import benign_checkpoint
    from .pinning import write_lock

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = [benign_checkpoint(root / f"shard_{i}.pt", rng=rng + i) for i in range(3)]
    lock = write_lock(paths, root / "models.lock")
    data = bytearray(paths[tampered].read_bytes())
    data[-200] ^= 0x01  # one bit in a tensor: loads fine, still not what was reviewed
    paths[tampered].write_bytes(bytes(data))
    return lock


def check_tampered(answer, *, lock: str | Path) -> bool:
    """Exercise 3: which file (name, e.g. ``"shard_0.pt"``) no longer matches the lock?"""
    from .pinning import verify_all

    if _unsolved(answer):
        print("not yet: set TAMPERED to the file name, e.g. 'shard_0.pt'")
        return False
    bad = sorted(k for k, ok in verify_all(lock).items() if not ok)
    if [str(answer)] == bad:
        print(f"pass: {answer} changed after it was pinned; refuse to load it")
        return True
    print(f"not yet: {answer!r} still matches its pinned digest (or is not pinned)")
    return False


HINTS = {
    1: "List exactly the names the benign configs use, no more: "
       "sc.scanner.find_targets(sc.read_config(path)) shows them.",
    2: "The scanner has no default _target_ allow-list: it needs the same exact names "
       "the benign configs use, and nothing broader.",
    3: "lk.supplychain.pinning.verify_all(lock) says which pinned file no longer matches.",
}
SOLUTIONS = {
    1: f"MY_ALLOW = {set(ZOO_TARGETS)!r}",
    2: f"SCAN_ALLOW = {set(ZOO_TARGETS)!r}",
    3: "TAMPERED = [k for k, ok in lk.supplychain.pinning.verify_all(LOCK).items() "
       "if not ok][0]",
}


def hint(n: int) -> None:
    """Print the hint for exercise ``n`` (1, 2 or 3)."""
    print(HINTS.get(n, f"no exercise {n}: choose 1, 2 or 3"))


def solution(n: int) -> None:
    """Print a solution for exercise ``n``."""
    print(SOLUTIONS.get(n, f"no exercise {n}: choose 1, 2 or 3"))

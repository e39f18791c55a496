"""Per-learner memory and CPU limits with Linux control groups (standard library only).

JupyterHub's LocalProcessSpawner accepts ``mem_limit`` and ``cpu_limit`` but does not enforce
them (it only passes them to the server as MEM_LIMIT / CPU_LIMIT). The workshop spawner puts
each learner's server, and so every kernel it starts, into a cgroup of its own:

- cgroup v1 (``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/cpu``): ``memory.limit_in_bytes``,
  ``cpu.cfs_quota_us``; the peak is ``memory.max_usage_in_bytes``.
- cgroup v2 (``/sys/fs/cgroup/cgroup.controllers`` lists ``memory`` and ``cpu``):
  ``memory.max``, ``cpu.max``; the peak is ``memory.peak`` (Linux 5.19+).

Each learner's group is made below the cgroup the hub itself runs in
(``<hub's group>/poisoning-lab/<learner>``), so a hub inside a container or a session keeps
its learners inside its own limits. Where neither hierarchy is writable, nothing is enforced
and :func:`attach` says so.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "poisoning-lab"


def own_paths(pid="self") -> dict:
    """Controller -> path of ``pid``'s cgroup, from /proc/PID/cgroup (``"" `` is v2's)."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            out[name] = path.lstrip("/")
    return out


def mode() -> str:
    """``"v1"``, ``"v2"`` or ``"none"``: which hierarchy this machine lets us use."""
    if (ROOT / "memory" / "memory.limit_in_bytes").exists() and os.access(ROOT / "memory", os.W_OK):
        return "v1"
    controllers = ROOT / "cgroup.controllers"
    if controllers.exists() and {"memory", "cpu"} <= set(controllers.read_text().split()):
        return "v2"
    return "none"


def dirs(user: str, *, own=None) -> dict:
    """Controller -> the learner's cgroup folder (memory, cpu).

    ``own``: controller -> the hub's cgroup path (as :func:`own_paths` gives it; default: this
    process's), below which the learner's group lies.
    """
    own = own_paths() if own is None else own
    m = mode()
    if m == "v1":
        return {c: ROOT / c / own.get(c, "") / GROUP / user for c in ("memory", "cpu")}
    if m == "v2":
        d = ROOT / own.get("", "") / GROUP / user
        return {"memory": d, "cpu": d}
    return {}


def _v2_enable(folder: Path) -> None:
    """Let ``folder``'s children use the memory and cpu controllers (v2 needs each level)."""
    for level in (folder.parent.parent, folder.parent):
        try:
            (level / "cgroup.subtree_control").write_text("+memory +cpu")
        except OSError:
            pass


def _weigh_parent(parent: Path, m: str) -> None:
    """Give the ``poisoning-lab`` group the CPU weight of one process per learner in it.

    Without this, all learners together would weigh as much as one ordinary process on the
    machine (a cgroup competes with its siblings as one unit).
    """
    n = max(1, sum(1 for p in parent.iterdir() if p.is_dir()))
    if m == "v1":
        (parent / "cpu.shares").write_text(str(1024 * n))
    else:
        (parent / "cpu.weight").write_text(str(min(10000, 100 * n)))


def attach(pid: int, user: str, *, own=None, mem_limit: int = 0, cpu_limit: float = 0.0) -> str:
    """Move process ``pid`` into ``user``'s cgroup with the given limits; returns what was done.

    ``mem_limit`` in bytes (0: none), ``cpu_limit`` in cores (0: none). Children started later
    (the learner's kernels) inherit the group.
    """
    m = mode()
    if m == "none":
        return "no writable cgroup hierarchy: limits NOT enforced"
    d = dirs(user, own=own)
    try:
        for folder in set(d.values()):
            folder.mkdir(parents=True, exist_ok=True)
            if m == "v2":
                _v2_enable(folder)
        if m == "v1":
            if mem_limit:
                (d["memory"] / "memory.limit_in_bytes").write_text(str(int(mem_limit)))
            if cpu_limit:
                (d["cpu"] / "cpu.cfs_period_us").write_text("100000")
                (d["cpu"] / "cpu.cfs_quota_us").write_text(str(int(cpu_limit * 100000)))
        else:
            if mem_limit:
                (d["memory"] / "memory.max").write_text(str(int(mem_limit)))
            if cpu_limit:
                (d["cpu"] / "cpu.max").write_text(f"{int(cpu_limit * 100000)} 100000")
        _weigh_parent(d["cpu"].parent, m)
        for folder in set(d.values()):
            (folder / "cgroup.procs").write_text(str(pid))
    except OSError as exc:
        return f"cgroup {m} not usable ({exc}): limits NOT enforced"
    return f"cgroup {m}: memory {mem_limit or 'unlimited'} bytes, cpu {cpu_limit or 'unlimited'} cores"


def peak_bytes(user: str, *, own=None):
    """Peak memory of everything ``user``'s group has held (server + kernels), or None."""
    d = dirs(user, own=own).get("memory")
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        if d is not None and (d / name).exists():
            return int((d / name).read_text().split()[0])
    return None


def pids(user: str, *, own=None) -> list[int]:
    out = set()
    for folder in set(dirs(user, own=own).values()):
        try:
            out |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        except OSError:
            pass
    return sorted(out)


def release(user: str, *, own=None, grace: float = 5.0) -> list[int]:
    """Stop whatever is left in ``user``'s group (TERM, then KILL) and remove the group.

    Returns the pids that had to be signalled.
    """
    left = pids(user, own=own)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids(user, own=own):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids(user, own=own) and time.monotonic() < deadline:
            time.sleep(0.1)
    for folder in set(dirs(user, own=own).values()):
        try:
            folder.rmdir()
        except OSError:
            pass
    return left


def release_all(*, own=None) -> list[int]:
    """:func:`release` every learner's group, then remove the ``poisoning-lab`` groups."""
    own = own_paths() if own is None else own
    users, tops = set(), set()
    for folder in dirs("x", own=own).values():
        tops.add(folder.parent)
        if folder.parent.is_dir():
            users |= {p.name for p in folder.parent.iterdir() if p.is_dir()}
    signalled = []
    for user in sorted(users):
        signalled += release(user, own=own)
    for top in tops:
        try:
            top.rmdir()
        except OSError:
            pass
    return signalled

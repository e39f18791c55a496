#!/usr/bin/env python3
"""A bounded load test of the workshop hub (``make hub-load N=8 [NB=notebooks/06_supply_chain.ipynb]``).

Starts the hub if none is running (and stops what it started), then N simulated learners at
once: each signs in through the hub's login form (first-use: workshop code + password), gets
an API token through the hub's REST API (the load-test service's token), starts their server,
and runs one lesson notebook's code cells top to bottom in a kernel of their own server,
through the proxy and the kernel's websocket. Only 127.0.0.1 is contacted. Every server is
stopped afterwards, and so is the hub, the accounts and the tokens this run created.

Prints one JSON line per learner::

  {"learner", "ready_s" (POST server -> /user/NAME/api/status answers), "notebook",
   "cells", "wall_s", "cpu_s" (kernel + its children: user + system), "peak_kernel_rss_mb",
   "peak_learner_mb" (the learner's cgroup: server + kernel + children; shared library pages
   count only for the group that loaded them first), "peak_server_rss_mb" (the single-user
   server's VmHWM), "failures": [...]}

and one summary line (``"summary": true``) with the machine's memory (baseline before the
run, peak during it, MemTotal), its CPU saturation (busy fraction over the notebook phase,
share of 0.5 s samples with every core busy, the 1-minute load average's peak), and the
learners' total CPU demand over the phase (sum of cpu_s / (phase wall x cores)).

Run as root with the hub's Python: /opt/poisoning-lab/hubenv/bin/python deploy/hub_load.py -n 8
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import cgroups  # noqa: E402
import hubctl  # noqa: E402
from hubclient import Hub  # noqa: E402
from passwords import load_passwords  # noqa: E402

MAX_LEARNERS = 60

_PRELUDE = ("import resource as _r, json as _j, time as _t\n"
            "_u0 = [_r.getrusage(w) for w in (_r.RUSAGE_SELF, _r.RUSAGE_CHILDREN)]\n"
            "_t0 = _t.time()")
_POSTLUDE = ("_u1 = [_r.getrusage(w) for w in (_r.RUSAGE_SELF, _r.RUSAGE_CHILDREN)]\n"
             "print('LOADTEST', _j.dumps({'cpu_s': sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime "
             "for a, b in zip(_u0, _u1)), 'kernel_rss_mb': _u1[0].ru_maxrss / 1024, "
             "'children_rss_mb': _u1[1].ru_maxrss / 1024}))")


class Sampler(threading.Thread):
    """Machine memory and CPU, every ``period`` seconds, from /proc."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        self.period, self.samples, self.stop_flag = period, [], threading.Event()

    @staticmethod
    def read():
        mem = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            mem[key] = int(value.split()[0]) / 1024
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = cpu[3] + cpu[4]
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        return {"t": time.monotonic(), "used_mb": mem["MemTotal"] - mem["MemAvailable"],
                "total_mb": mem["MemTotal"], "busy": sum(cpu) - idle, "all": sum(cpu), "load1": load1}

    def run(self):
        while not self.stop_flag.is_set():
            self.samples.append(self.read())
            self.stop_flag.wait(self.period)

    def window(self, t0: float, t1: float) -> dict:
        s = [x for x in self.samples if t0 <= x["t"] <= t1]
        if len(s) < 2:
            return {"cpu_busy": None, "cpu_all_busy_share": None, "load1_peak": None}
        fracs = [(b["busy"] - a["busy"]) / max(b["all"] - a["all"], 1) for a, b in zip(s, s[1:])]
        return {"cpu_busy": round((s[-1]["busy"] - s[0]["busy"]) / max(s[-1]["all"] - s[0]["all"], 1), 3),
                "cpu_all_busy_share": round(sum(f >= 0.95 for f in fracs) / len(fracs), 3),
                "load1_peak": max(x["load1"] for x in s)}


def code_cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    cells = []
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if src.strip():
                cells.append(src)
    return cells


def server_peak_rss_mb(name: str, own):
    """Peak resident memory (VmHWM) of ``name``'s single-user server process, or None."""
    for pid in cgroups.pids(name, own=own):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"jupyterhub-singleuser" in cmd:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return None


async def one_learner(hub: Hub, settings: dict, name: str, password, notebook: Path,
                      cells: list[str], cell_timeout: float, own) -> dict:
    row = {"learner": name, "ready_s": None, "notebook": notebook.name, "cells": len(cells),
           "cells_run": 0, "wall_s": None, "cpu_s": None, "peak_kernel_rss_mb": None,
           "peak_learner_mb": None, "failures": []}
    token = None
    try:
        if password:   # an unclaimed account: sign in through the form, as a learner's first login
            await hub.login(name, password, settings["workshop_code"])
        token = await hub.user_token(settings["service_token"], name)
        row["ready_s"] = round(await hub.start_server(name, token), 2)
        kernel = await hub.kernel(name, token, path="poisoning-lab")
        try:
            await kernel.execute(_PRELUDE, timeout=cell_timeout)
            t0 = time.monotonic()
            for src in cells:
                got = await kernel.execute(src, timeout=cell_timeout)
                if got["status"] != "ok":
                    row["failures"].append(f"cell {row['cells_run'] + 1}: {got['error']}")
                    break
                row["cells_run"] += 1
            row["wall_s"] = round(time.monotonic() - t0, 2)
            got = await kernel.execute(_POSTLUDE, timeout=cell_timeout)
            stats = json.loads(got["stdout"].split("LOADTEST", 1)[1])
            row["cpu_s"] = round(stats["cpu_s"], 2)
            row["peak_kernel_rss_mb"] = round(stats["kernel_rss_mb"])
            row["peak_children_rss_mb"] = round(stats["children_rss_mb"])
        finally:
            peak = cgroups.peak_bytes(name, own=own)
            row["peak_learner_mb"] = round(peak / 2**20) if peak else None
            row["peak_server_rss_mb"] = server_peak_rss_mb(name, own)
            await kernel.shutdown()
    except Exception as exc:  # a failure of one learner is reported, not raised: the others go on
        row["failures"].append(f"{type(exc).__name__}: {exc}")
    finally:
        if token:
            try:
                await hub.stop_server(name, token)
            except Exception as exc:
                row["failures"].append(f"stop: {exc}")
    return row


def arrivals(n: int, stagger: float) -> list[float]:
    """When each of ``n`` learners arrives (seconds after the first): evenly over ``stagger``
    seconds, as a room logs in; all at once for 0."""
    if stagger < 0:
        raise ValueError(f"stagger must be >= 0 seconds, got {stagger}")
    return [0.0 if n == 1 else stagger * i / (n - 1) for i in range(n)]


async def drive(settings: dict, names: list[str], notebook: Path, *, cell_timeout: float,
                total_timeout: float, claimed: set, stagger: float = 0.0) -> tuple[list[dict], dict]:
    hub = Hub(f"http://127.0.0.1:{settings['port']}")
    cells = code_cells(notebook)
    passwords = {n: None if n in claimed else secrets.token_urlsafe(12) for n in names}
    t0 = time.monotonic()

    async def arrive(name: str, delay: float) -> dict:
        await asyncio.sleep(delay)
        row = await one_learner(hub, settings, name, passwords[name], notebook, cells,
                                cell_timeout, settings.get("cgroup_parent"))
        return {**row, "arrival_s": round(delay, 1)}

    tasks = [asyncio.ensure_future(arrive(n, d)) for n, d in zip(names, arrivals(len(names), stagger))]
    done, pending = await asyncio.wait(tasks, timeout=total_timeout)
    for task in pending:
        task.cancel()
    rows = []
    for name, task in zip(names, tasks):
        if task in done and not task.cancelled():
            rows.append(task.result())
        else:
            rows.append({"learner": name, "failures": [f"not finished within {total_timeout:.0f} s"]})
    t1 = time.monotonic()
    for name in names:   # whatever is left, stop it
        try:
            token = await hub.user_token(settings["service_token"], name, note="load test cleanup")
            await hub.stop_server(name, token)
        except Exception:
            pass
    return rows, {"t0": t0, "t1": t1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", "--learners", type=int, default=8)
    p.add_argument("--notebook", type=Path, default=REPO / "notebooks" / "00_welcome.ipynb")
    p.add_argument("--cell-timeout", type=float, default=600)
    p.add_argument("--timeout", type=float, default=1500, help="the whole run's limit, seconds")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON lines here")
    p.add_argument("--root", type=Path, default=hubctl.DEFAULT_ROOT)
    p.add_argument("--mem", default="2G")
    p.add_argument("--cpu", type=float, default=1.0)
    p.add_argument("--stagger", type=float, default=0.0,
                   help="spread the learners' arrivals evenly over this many seconds (default 0: all at once)")
    args = p.parse_args(argv)
    if not 1 <= args.learners <= MAX_LEARNERS:
        p.error(f"--learners must be in 1..{MAX_LEARNERS}")
    if os.geteuid() != 0:
        p.error("run as root")
    # the learners run their own copy (the committed notebook under ROOT/lab), so read that one
    copy = args.root / "lab" / "notebooks" / args.notebook.name
    notebook = copy if copy.exists() else args.notebook.resolve()
    names = hubctl.learner_names(args.learners)
    state = args.root / "state"
    sampler = Sampler()
    sampler.start()
    baseline = Sampler.read()
    started, created, claimed = False, [], set(names)
    try:
        if hubctl.hub_pid(state):
            settings = hubctl.load_settings(state)
            missing = sorted(set(names) - set(settings["learners"]))
            if missing:
                raise SystemExit(f"the running hub does not allow {missing[0]}..; stop it or use fewer learners")
            print(f"[load] using the running hub at port {settings['port']}", file=sys.stderr)
        else:
            if not hubctl.installed(args.root):
                hubctl.install(args.root)
            created = hubctl.ensure_users(names)
            settings = hubctl.start(root=args.root, state=state, learners=names, mem_limit=args.mem,
                                    cpu_limit=args.cpu)
            started = True
            print(f"[load] started a hub for {len(names)} learners ({len(created)} new accounts)", file=sys.stderr)
        # accounts a real learner has claimed keep their password: those skip the form login
        claimed = set(load_passwords(state / "passwords.json"))
        rows, span = asyncio.run(drive(settings, names, notebook, cell_timeout=args.cell_timeout,
                                       total_timeout=args.timeout, claimed=claimed, stagger=args.stagger))
    finally:
        if started:
            hubctl.stop(root=args.root, state=state)
        for name in set(names) - claimed:   # forget the passwords this run chose
            hubctl.reset_password(name, state=state)
        if created:
            hubctl.remove_users(created)
        sampler.stop_flag.set()
        sampler.join()
    window = [s for s in sampler.samples if span["t0"] <= s["t"] <= span["t1"]]
    phase = span["t1"] - span["t0"]
    cores = os.cpu_count() or 1
    cpu_total = sum(r.get("cpu_s") or 0 for r in rows)
    summary = {"summary": True, "learners": len(names), "notebook": notebook.name, "stagger_s": args.stagger,
               "ok": sum(1 for r in rows if not r.get("failures")),
               "failures": sum(len(r.get("failures", [])) for r in rows),
               "phase_wall_s": round(phase, 1), "cores": cores,
               "mem_total_mb": round(baseline["total_mb"]), "mem_baseline_mb": round(baseline["used_mb"]),
               "mem_peak_mb": round(max((s["used_mb"] for s in window), default=baseline["used_mb"])),
               **sampler.window(span["t0"], span["t1"]),
               "cpu_demand": round(cpu_total / (phase * cores), 3) if phase else None,
               "mem_limit": args.mem if started else settings.get("mem_limit"),
               "cpu_limit": args.cpu if started else settings.get("cpu_limit")}
    summary["mem_peak_delta_mb"] = summary["mem_peak_mb"] - summary["mem_baseline_mb"]
    lines = [json.dumps(r) for r in rows] + [json.dumps(summary)]
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0 if summary["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

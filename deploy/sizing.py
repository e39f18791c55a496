#!/usr/bin/env python3
"""Server sizing from the load test's measurements (standard library only).

    python3 deploy/sizing.py deploy/results/hub_load_n30.jsonl [--bench instructor/timings.json]
        [--z2jh deploy/z2jh/config.yaml]

Prints a markdown table for 20, 30 and 50 learners on one server, and (with ``--z2jh``) writes
a Zero to JupyterHub ``config.yaml`` whose per-learner requests and limits come from the same
numbers. How each number is made:

- memory per learner (MB) = the larger of (a) the largest ``peak_learner_mb`` of the run (the
  learner's cgroup: single-user server + kernel + its children at their peak, less the shared
  library pages another process loaded first) and (b) the machine's peak memory increase
  during the run divided by the number of learners (hub and proxy included). Kernel RSS is
  not used: it counts PyTorch's shared library pages once per learner, although the machine
  holds them once. With ``--bench`` (the output of ``python -m labkit bench --notebooks-only
  --json``), the difference between the heaviest lesson's kernel peak and the load notebook's
  is added, so the figure holds for every lesson, not only the one the load test ran.
- CPU per running learner = 1 core: the kernels are single-threaded (OMP_NUM_THREADS=1), so a
  cell that runs alone uses one core; with fewer cores than running learners, cells queue
  (the load test shows by how much: its ``wall_s`` against the bench's solo time).
- The Littlest JupyterHub's rule: RAM = concurrent learners x memory per learner + 128 MB,
  then + headroom; cores = concurrent learners x CPU per learner + 20%. Planned concurrency
  is 60% (the top of the 40-60% range) with 30% memory headroom; the "all at once" columns
  use 100%, as when a whole room runs the same cell together.
- Zero to JupyterHub: each learner's pod has its own page cache, so it holds PyTorch's
  libraries itself: memory guarantee = the heaviest lesson's kernel peak RSS + the single-user
  server's peak RSS (``peak_server_rss_mb``; 150 MB if the run did not record it), rounded up
  to 64 MB; memory limit = 1.5 x guarantee (rounded up to 256 MB; room for a learner's own
  experiments); CPU guarantee = CPU per learner x 0.5 (the middle of 40-60% concurrency), CPU
  limit = CPU per learner rounded up to a half core (at least 1).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

OVERHEAD_MB = 128
CONCURRENCY = 0.6
HEADROOM = 0.3
CPU_MARGIN = 0.2
SIZES = (20, 30, 50)
#: a learner's kernel is single-threaded (OMP_NUM_THREADS=1): one core while a cell runs
CPU_PER_RUNNING_LEARNER = 1.0


def load(path) -> tuple[list[dict], dict]:
    rows, summary = [], None
    for line in Path(path).read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("summary"):
                summary = obj
            else:
                rows.append(obj)
    good = [r for r in rows if not r.get("failures")]
    if not good or summary is None:
        raise SystemExit(f"{path}: no successful learner or no summary line")
    return good, summary


def per_learner(rows: list[dict], summary: dict, bench=None) -> dict:
    """Memory and CPU of one learner, from the load test (and the bench, for the heaviest lesson)."""
    notebook = rows[0]["notebook"]
    cgroup = max(r.get("peak_learner_mb") or 0 for r in rows)
    marginal = summary["mem_peak_delta_mb"] / summary["learners"] if summary.get("mem_peak_delta_mb") else 0
    mem = max(cgroup, marginal)
    kernel = max(r["peak_kernel_rss_mb"] for r in rows)
    heaviest = None
    if bench:
        table = {b["notebook"]: b for b in bench["notebooks"]}
        heaviest = max(table.values(), key=lambda b: b["peak_rss_mb"]) if table else None
        if heaviest and heaviest["peak_rss_mb"] > kernel:
            mem += heaviest["peak_rss_mb"] - kernel
    cpu_s = max(r["cpu_s"] for r in rows)
    # a Kubernetes pod has its own page cache: it holds PyTorch's libraries itself, so a pod
    # needs the kernel's full RSS (heaviest lesson) plus the server's
    server = max((r.get("peak_server_rss_mb") or 0) for r in rows) or 150
    pod = max(kernel, heaviest["peak_rss_mb"] if heaviest else 0) + server
    return {"notebook": notebook, "mem_mb": round(mem), "cpu_cores": CPU_PER_RUNNING_LEARNER,
            "cgroup_mb": cgroup, "marginal_mb": round(marginal), "kernel_mb": kernel,
            "cpu_s": cpu_s, "wall_s": max(r["wall_s"] for r in rows), "server_mb": server, "pod_mb": pod,
            "heaviest": heaviest["notebook"] if heaviest else None,
            "heaviest_kernel_mb": heaviest["peak_rss_mb"] if heaviest else None}


def plan(n: int, u: dict, concurrency: float) -> dict:
    conc = math.ceil(n * concurrency)
    ram_mb = (conc * u["mem_mb"] + OVERHEAD_MB) * (1 + HEADROOM)
    cores = conc * u["cpu_cores"] * (1 + CPU_MARGIN)
    return {"concurrent": conc, "ram_gb": math.ceil(ram_mb / 1024), "cores": math.ceil(cores)}


def table(u: dict, summary: dict) -> str:
    out = [f"Per learner: {u['mem_mb']} MB at peak (server + kernel), {u['cpu_cores']:g} core while "
           f"a cell runs (measured: `make hub-load` with {summary['learners']} learners on "
           f"{u['notebook']}, {summary['cores']} cores: cgroup peak {u['cgroup_mb']} MB, machine "
           f"increase per learner {u['marginal_mb']} MB, kernel CPU {u['cpu_s']:g} s per run"
           + (f"; memory raised to the heaviest lesson, {u['heaviest']} at {u['heaviest_kernel_mb']} MB "
              f"kernel peak" if u["heaviest"] and u["heaviest_kernel_mb"] > u["kernel_mb"] else "") + ").",
           "",
           "| learners | planned concurrent (60%) | RAM (+128 MB, +30%) | cores (+20%) "
           "| all at once: RAM | all at once: cores |",
           "|---|---|---|---|---|---|"]
    for n in SIZES:
        p, a = plan(n, u, CONCURRENCY), plan(n, u, 1.0)
        out.append(f"| {n} | {p['concurrent']} | {p['ram_gb']} GB | {p['cores']} | {a['ram_gb']} GB | {a['cores']} |")
    return "\n".join(out)


def z2jh(u: dict, source: str) -> dict:
    guarantee = math.ceil(u["pod_mb"] / 64) * 64
    limit = math.ceil(guarantee * 1.5 / 256) * 256
    return {"mem_guarantee": f"{guarantee}M", "mem_limit": f"{limit}M",
            "cpu_guarantee": round(u["cpu_cores"] * 0.5, 2),
            "cpu_limit": max(1.0, math.ceil(u["cpu_cores"] * 2) / 2), "source": source}


Z2JH_TEMPLATE = """\
# Zero to JupyterHub (Helm chart) values for the Poisoning Lab: ON PAPER, not run here (this
# project has no Kubernetes cluster). Generated by
#   python3 deploy/sizing.py {source} {bench_arg}--z2jh deploy/z2jh/config.yaml
# from the load test's measurements: edit the numbers there, not here.
#   per learner pod: {pod_mb} MB peak (heaviest lesson's kernel RSS + server RSS; a pod holds
#   its own copy of PyTorch's libraries), {cpu_cores} core while a cell runs
#   memory: guarantee = that peak, limit = 1.5 x; cpu: guarantee = 0.5 x, limit = rounded up
# Install: helm upgrade --install lab jupyterhub/jupyterhub --values deploy/z2jh/config.yaml
hub:
  config:
    JupyterHub:
      authenticator_class: firstuseauthenticator   # bundled in the chart's hub image
    FirstUseAuthenticator:
      create_users: false                          # only names in allowed_users
    Authenticator:
      admin_users: [instructor]
      allowed_users: [{learners}]
singleuser:
  image:
    # build from this repository with repo2docker (it reads binder/: same pins, CPU wheels)
    name: REGISTRY/OWNER/poisoning-lab
    tag: latest
  defaultUrl: /lab/tree/poisoning-lab/00_welcome.ipynb
  lifecycleHooks:
    postStart:
      exec:   # copy the notebooks into the learner's volume on first start, never over a copy
        command: ["sh", "-c", "test -e $HOME/poisoning-lab || cp -r /home/jovyan/notebooks $HOME/poisoning-lab"]
  memory:
    guarantee: {mem_guarantee}
    limit: {mem_limit}
  cpu:
    guarantee: {cpu_guarantee}
    limit: {cpu_limit}
  extraEnv:
    OMP_NUM_THREADS: "1"
    MKL_NUM_THREADS: "1"
    LAB_WORKSHOP_KEY: CHANGE-ME                    # completion codes (python -m labkit progress)
  storage:
    capacity: 1Gi
cull:
  enabled: true
  timeout: 3600
  every: 300
"""


def render_z2jh(u: dict, source: str, bench_path=None, n_learners: int = 30) -> str:
    z = z2jh(u, source)
    learners = ", ".join(f"learner{i:02d}" for i in range(1, n_learners + 1))
    return Z2JH_TEMPLATE.format(source=source, bench_arg=f"--bench {bench_path} " if bench_path else "",
                                learners=learners, pod_mb=u["pod_mb"], cpu_cores=u["cpu_cores"], **{
                                    k: v for k, v in z.items() if k != "source"})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", help="the JSON lines of deploy/hub_load.py")
    p.add_argument("--bench", default=None, help="python -m labkit bench --notebooks-only --json output")
    p.add_argument("--z2jh", default=None, help="write a Zero to JupyterHub config.yaml here")
    args = p.parse_args(argv)
    rows, summary = load(args.results)
    bench = json.loads(Path(args.bench).read_text()) if args.bench else None
    u = per_learner(rows, summary, bench)
    print(table(u, summary))
    if args.z2jh:
        Path(args.z2jh).parent.mkdir(parents=True, exist_ok=True)
        Path(args.z2jh).write_text(render_z2jh(u, args.results, args.bench))
        z = z2jh(u, args.results)
        print(f"\nwrote {args.z2jh}: memory {z['mem_guarantee']} guarantee / {z['mem_limit']} limit, "
              f"cpu {z['cpu_guarantee']} / {z['cpu_limit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

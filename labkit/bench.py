"""What a learner gets: the lab's speed and memory, measured (``python -m labkit bench``).

Measured here rather than in timed tests, which would be flaky on shared CI machines. Every
measurement runs in a fresh process with the default environment a learner's kernel has:
the thread variables (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``NUMEXPR_NUM_THREADS``, ``LABKIT_THREADS``) are removed, so :mod:`labkit.compute` picks
the threads as it does for a learner. Two places are measured:

- ``one-cpu``: under a CPU quota of one CPU (a cgroup with quota = period = 100 ms, as on
  Binder and most JupyterHubs, where a container sees every core of the host but may use
  about one). The bench creates ``/sys/fs/cgroup/cpu/labkit-bench-<pid>`` (cgroup v1) or a
  child group with ``cpu.max`` (cgroup v2), moves the measured process into it and removes
  it afterwards. Where no group can be made (not root, no cpu controller) the output says
  so and that column is skipped.
- ``free``: no quota, on the cores the machine has; the load average at the
  time is printed next to the table, since other work on the machine slows this column.

:func:`notebook_costs` executes each notebook in a fresh kernel (as nbval does). Per
notebook: ``seconds`` (wall time of executing every cell, kernel start excluded),
``cpu_seconds`` (the kernel process's user + system time over the same span, plus that of
the subprocesses it waited for), ``peak_rss_mb`` (the kernel's peak resident memory,
``VmHWM`` in ``/proc/<pid>/status``) and ``peak_rss_cpu_only_mb``: the peak minus the
resident memory of CUDA-only mappings. Those are summed from ``/proc/<pid>/smaps`` at the
end of the notebook (the ``Rss`` of every mapping whose file is a CUDA-only library:
``libcudnn*``, ``libcublas*``, ``libcusparse*``, ``libcufft*``, ``libcurand*``,
``libnccl*``, ``libcusolver*``, ``libnvrtc*``, ``libnvJitLink*``, ``libcupti*``,
``libtorch_cuda*``, ``libc10_cuda*``, ``libcuda*``, or a file under a ``triton`` or
``nvidia`` site-packages folder). A CPU-only PyTorch wheel (Binder's) does not load them,
so the difference estimates the peak such a kernel reaches.

:func:`widget_latency` builds every ``*_explorer`` factory in :mod:`labkit.widgets` and
times one update per control change. :func:`memory_steps` (``--memory``) prints a
process's resident memory after each step of a lesson's life: ``import torch``, datasets,
trained models, the experiment caches, figures.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["notebook_costs", "lesson_notebooks", "widget_latency", "memory_steps", "cuda_only_rss_mb",
           "one_cpu_group", "learner_env", "add_parser"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: Variables that set thread counts; a learner's kernel has none of them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "LABKIT_THREADS")

_CUDA_ONLY = re.compile(
    r"(/lib(cudnn|cublas|cusparse|cufft|curand|nccl|cusolver|nvrtc|nvJitLink|cupti|torch_cuda|c10_cuda|cuda)"
    r"[^/]*$)|(/site-packages/(nvidia|triton)/)|(/triton/)")

_PID_CELL = "import os\nprint('LABKIT_BENCH_PID', os.getpid())"


def lesson_notebooks() -> list:
    """Every lesson's notebook, in the order of :mod:`labkit.lessons.manifest`."""
    from .lessons.manifest import LESSONS

    return [NOTEBOOK_DIR / lesson.notebook for lesson in LESSONS]


def learner_env(environ=os.environ) -> dict:
    """``environ`` without the thread variables (what ``make lab`` gives a kernel)."""
    return {k: v for k, v in environ.items() if k not in THREAD_VARIABLES}


# ---- /proc readings ------------------------------------------------------------------------

def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of the children it waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))        # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def cuda_only_rss_mb(pid="self") -> float:
    """Resident memory (MB) of ``pid``'s mappings of CUDA-only libraries (see the module doc)."""
    total_kb, cuda = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if not line[0].isupper():                    # a mapping's header: "addr perms ... path"
                parts = line.split(None, 5)
                cuda = len(parts) == 6 and bool(_CUDA_ONLY.search(parts[5].strip()))
            elif cuda and line.startswith("Rss:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


# ---- a one-CPU quota -----------------------------------------------------------------------

class _Group:
    """A cgroup with a one-CPU quota (``path`` is None where none could be made: ``why``)."""

    def __init__(self):
        self.path, self.procs, self.why = None, None, ""
        v1 = Path("/sys/fs/cgroup/cpu")
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        try:
            if (v1 / "cpu.cfs_quota_us").exists():
                self.path = v1 / f"labkit-bench-{os.getpid()}"
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text("100000")
                (self.path / "cpu.cfs_quota_us").write_text("100000")
            elif v2.exists() and "cpu" in v2.read_text().split():
                self.path = Path("/sys/fs/cgroup") / f"labkit-bench-{os.getpid()}"
                self.path.mkdir()
                (self.path / "cpu.max").write_text("100000 100000")
            else:
                self.why = "no cgroup cpu controller (v1 or v2) on this machine"
                return
            self.procs = self.path / "cgroup.procs"
        except OSError as exc:
            self.why = f"cannot make a cgroup ({exc.strerror or exc}; root needed)"
            self.remove()

    def add(self, pid: int) -> None:
        self.procs.write_text(str(pid))

    def throttled(self) -> str:
        try:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        except OSError:
            return ""
        return stat.get("nr_throttled", "")

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            parent = self.path.parent / "cgroup.procs"
            with contextlib.suppress(OSError):
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        parent.write_text(pid)
            for _ in range(50):
                try:
                    self.path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        self.path = None


@contextlib.contextmanager
def one_cpu_group():
    """A cgroup with a one-CPU quota for the duration of the ``with`` block; yields an object
    with ``.path`` (None where no group could be made, ``.why`` says why) and ``.add(pid)``."""
    group = _Group()
    try:
        yield group
    finally:
        group.remove()


# ---- notebooks ------------------------------------------------------------------------------

def notebook_costs(paths=None, *, timeout: int = 600, group=None) -> list[dict]:
    """Execute notebooks (default: every lesson's, in the manifest's order) in fresh kernels and
    measure each.

    The kernel gets :func:`learner_env`; with ``group`` (from :func:`one_cpu_group`) it runs
    in that cgroup. Returns one dict per notebook (see the module docstring for the fields;
    ``cells`` lists the kernel's resident and peak memory after each code cell).
    The notebooks on disk are not modified.
    """
    import nbformat
    from nbclient import NotebookClient

    paths = lesson_notebooks() if paths is None else [Path(p) for p in paths]
    rows = []
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(learner_env(saved))          # the kernel inherits this environment
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            nb.cells.insert(0, nbformat.v4.new_code_cell(_PID_CELL))
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            with client.setup_kernel():
                client.execute_cell(nb.cells[0], 0)
                text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
                pid = int(text.split("LABKIT_BENCH_PID")[1].split()[0])
                if group is not None and group.path is not None:
                    group.add(pid)
                t0, c0 = time.perf_counter(), _cpu_seconds(pid)
                error, per_cell = "", []
                try:
                    for index, cell in enumerate(nb.cells[1:], start=1):
                        client.execute_cell(cell, index)
                        if cell.cell_type == "code":
                            per_cell.append({"cell": index - 1, "rss_mb": round(_status_kb(pid, "VmRSS") / 1024),
                                             "peak_rss_mb": round(_status_kb(pid, "VmHWM") / 1024),
                                             "source": cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""})
                except Exception as exc:                    # report the row, do not stop the bench
                    error = f"cell {index - 1}: {type(exc).__name__}"
                seconds, cpu = time.perf_counter() - t0, _cpu_seconds(pid) - c0
                peak = _status_kb(pid, "VmHWM") / 1024
                cuda = cuda_only_rss_mb(pid)
            rows.append({"notebook": path.name, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                         "peak_rss_mb": round(peak), "cuda_only_mb": round(cuda),
                         "peak_rss_cpu_only_mb": round(peak - cuda), "error": error, "cells": per_cell})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rows


# ---- widgets --------------------------------------------------------------------------------

def _explorer_inputs() -> dict:
    """Arguments the lesson-4 widgets take from their notebook (as the notebook builds them)."""
    from .data import digits
    from .experiment import prepare

    return {"gradient_matching_explorer": (prepare("gradient_matching", seed=0, params={"n_targets": 3}),),
            "federated_explorer": (digits(seed=0),)}


def _move(control) -> None:
    if hasattr(control, "options"):
        opts = [o[1] if isinstance(o, tuple) else o for o in control.options]
        control.value = opts[(opts.index(control.value) + 1) % len(opts)]
    elif isinstance(control.value, bool):
        control.value = not control.value
    else:
        step = control.step
        control.value = control.value + step if control.value + step <= control.max else control.value - step


def _with_render(box) -> dict:
    """The panel's update time plus the PNG encoding a kernel's ``display()`` adds (outside a
    kernel ``display()`` prints text): ``seconds`` in all, ``render_s`` of it the PNG."""
    import io

    t0 = time.perf_counter()
    box.figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    render = time.perf_counter() - t0
    return {"seconds": round(box.last_seconds + render, 2), "render_s": round(render, 2)}


def widget_latency() -> list[dict]:
    """Seconds per update of every ``*_explorer`` widget, for one change of each control.

    Numeric controls move one step up (or down at the maximum); dropdowns take their next
    option; checkboxes toggle. A control that is disabled in the current setting (it does
    not apply) is first made to apply by moving a dropdown (those moves are rows too).
    Widgets that need
    the notebook's data get it as their notebook builds it. Returns one dict per (widget,
    control), see :func:`_with_render`; ``"(first draw)"`` is the build, which a notebook
    pays once. The browser's own share (transfer, drawing) is measured by ``make ui-test``.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    from . import widgets

    inputs = _explorer_inputs()
    rows = []
    for name in sorted(n for n in dir(widgets) if n.endswith("_explorer")):
        with contextlib.redirect_stdout(io.StringIO()):   # outside a kernel, display() prints
            box = getattr(widgets, name)(*inputs.get(name, ()))
        rows.append({"widget": name, "control": "(first draw)", **_with_render(box)})
        def change(cname):
            with contextlib.redirect_stdout(io.StringIO()):
                _move(box.controls[cname])
            rows.append({"widget": name, "control": cname, **_with_render(box)})

        for cname, control in box.controls.items():
            for other, c in box.controls.items():         # make it apply: move a dropdown
                if not control.disabled:
                    break
                if other != cname and hasattr(c, "options"):
                    for _ in range(len(c.options) - 1):
                        change(other)
                        if not control.disabled:
                            break
            if not control.disabled:
                change(cname)
    return rows


# ---- memory ---------------------------------------------------------------------------------

def memory_steps() -> list[dict]:
    """Resident memory of this process after each step of a lesson's life (run it in a fresh
    process: ``python -m labkit bench --memory``). Each row: ``step``, ``rss_mb``,
    ``cuda_only_mb`` (see :func:`cuda_only_rss_mb`)."""
    import ctypes
    import gc

    rows = []

    def note(step):
        rss = _status_kb(os.getpid(), "VmRSS") / 1024
        rows.append({"step": step, "rss_mb": round(rss), "cuda_only_mb": round(cuda_only_rss_mb())})

    def trim():
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    import numpy  # noqa: F401
    note("python + numpy")
    import labkit as lk
    note("import labkit")
    import torch  # noqa: F401
    note("import torch")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    note("import matplotlib")
    split = lk.data.digits(seed=0)
    note("digits dataset")
    lk.models.train(split.train, seed=0)
    note("one model trained (digits)")
    lk.run("label_flip", defence="knn_sanitisation", rate=0.3, seed=0)
    note("one lk.run (label flip + k-NN)")
    for rate in (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25):
        lk.run("backdoor", rate=rate, seed=0)
    note("8 more lk.run (backdoor sweep, cached victims)")
    mnist = lk.data.mnist_sample(seed=0)
    note("mnist_sample dataset")
    lk.models.train(mnist.train, seed=0)
    note("one model trained (mnist sample)")
    from .widgets import _lessons

    _lessons().clean_label_setting(0)
    note("lesson 3 setting (extractor, victim, guard)")
    figs = [lk.viz.dataset_preview(split.train) for _ in range(10)]
    note("10 image-grid figures open")
    for f in figs:
        plt.close(f)
    del figs
    trim()
    note("figures closed, gc + malloc_trim")
    return rows


def _memory_child() -> None:
    print(json.dumps(memory_steps()))


def _in_child(code: str, group=None) -> str:
    """Run ``python -c code`` with the learner's environment (in ``group``); its stdout."""
    proc = subprocess.Popen([sys.executable, "-c", code], env=learner_env(), stdout=subprocess.PIPE,
                            cwd=str(NOTEBOOK_DIR.parent))
    if group is not None and group.path is not None:
        group.add(proc.pid)
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"bench child failed ({proc.returncode}): {code}")
    return out.decode()


# ---- the command ----------------------------------------------------------------------------

def _load() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def _print_cells(rows):
    for r in rows:
        print(f"\n{r['notebook']}: kernel memory after each code cell (MB)")
        last = None
        for c in r["cells"]:
            grew = "" if last is None else f"{c['rss_mb'] - last:+5d}"
            print(f"  cell {c['cell']:>3}  RSS {c['rss_mb']:5d} {grew:>6}  peak {c['peak_rss_mb']:5d}  {c['source']}")
            last = c["rss_mb"]


def _print_notebooks(rows, where):
    print(f"\nnotebooks, {where} ({_load()}):")
    print(f"  {'notebook':<34} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12} {'w/o CUDA MB':>12}")
    for r in rows:
        print(f"  {r['notebook']:<34} {r['seconds']:7.1f} {r['cpu_seconds']:7.1f} {r['peak_rss_mb']:12.0f} "
              f"{r['peak_rss_cpu_only_mb']:12.0f}  {r['error']}", flush=True)


def _print_widgets(rows, where):
    print(f"\nwidgets, seconds per change, {where} ({_load()}):")
    for r in rows:
        print(f"  {r['widget']:<28} {r['control']:<16} {r['seconds']:6.2f} s  (PNG {r['render_s']:.2f} s)",
              flush=True)


def _cmd(args) -> int:
    if args.memory:
        rows = json.loads(_in_child("from labkit.bench import _memory_child; _memory_child()"))
        if args.json:
            print(json.dumps({"memory": rows}))
        else:
            print(f"{'step':<48} {'RSS MB':>7} {'CUDA-only MB':>13}")
            for r in rows:
                print(f"{r['step']:<48} {r['rss_mb']:7.0f} {r['cuda_only_mb']:13.0f}")
        return 0
    out = {"load_before": _load()}
    places = ["one-cpu", "free"] if args.where == "both" else [args.where]
    for where in places:
        with one_cpu_group() if where == "one-cpu" else contextlib.nullcontext() as group:
            if where == "one-cpu" and group.path is None:
                print(f"one-cpu: skipped: {group.why}", flush=True)
                out[where] = {"skipped": group.why}
                continue
            label = "under a one-CPU quota" if where == "one-cpu" else "no quota (all cores)"
            res = out[where] = {}
            if not args.widgets_only:
                res["notebooks"] = notebook_costs(args.notebook or None, group=group)
                if not args.json:
                    _print_notebooks(res["notebooks"], label)
                    if args.cells:
                        _print_cells(res["notebooks"])
            if not args.notebooks_only:
                code = "import json; from labkit.bench import widget_latency; print(json.dumps(widget_latency()))"
                res["widgets"] = json.loads(_in_child(code, group).strip().splitlines()[-1])
                if not args.json:
                    _print_widgets(res["widgets"], label)
            if group is not None:
                res["throttled_periods"] = group.throttled()
    out["load_after"] = _load()
    if args.json:
        print(json.dumps(out))
    return 0


def _notebook_arg(text: str) -> Path:
    """An ``argparse`` type: an ``.ipynb`` regular file that parses as a notebook, checked
    before the first kernel starts (a damaged third notebook would otherwise stop the bench
    after the first two ran)."""
    import argparse

    from .cli.validate import read_text

    if not text.endswith(".ipynb"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a notebook (.ipynb)")
    try:
        nb = json.loads(read_text(text, "notebook"))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(" ".join(str(exc).split())) from None
    if not (isinstance(nb, dict) and isinstance(nb.get("cells"), list)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a notebook (no list of cells)")
    return Path(text)


def add_parser(subparsers) -> None:
    """Register ``python -m labkit bench``."""
    p = subparsers.add_parser("bench", help="notebook run time, kernel memory, widget latency, "
                                            "under a one-CPU quota and without")
    p.add_argument("notebook", nargs="*", type=_notebook_arg,
                   help="notebooks to run (default: every lesson's, in order)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--notebooks-only", action="store_true")
    only.add_argument("--widgets-only", action="store_true")
    p.add_argument("--where", choices=["one-cpu", "free", "both"], default="both",
                   help="under a one-CPU cgroup quota, without a quota, or both (default)")
    p.add_argument("--memory", action="store_true",
                   help="resident memory after each step of a lesson (import torch, data, caches, figures)")
    p.add_argument("--cells", action="store_true", help="also the kernel's memory after each code cell")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)

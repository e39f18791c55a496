"""The lab's speed and memory budget, measured (``python -m labkit bench``).

The targets from the lab's brief: every notebook runs top to bottom in about a minute on
2 CPU cores, a widget change answers in about 2 s, a kernel stays under ~1.2 GB. These are
measured here rather than in timed tests, which would be flaky on shared CI machines.

- :func:`notebook_costs` executes each notebook in a fresh kernel (as nbval does) and reports
  wall time and the kernel's peak resident memory.
- :func:`widget_latency` builds every ``*_explorer`` factory in :mod:`labkit.widgets` and
  times one redraw per control change.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["notebook_costs", "widget_latency", "add_parser"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

_PEAK_RSS_CELL = ("import resource, sys\n"
                  "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def notebook_costs(paths=None, *, timeout: int = 600) -> list[dict]:
    """Execute notebooks (default: all in ``notebooks/``) and measure each.

    Returns one dict per notebook: ``notebook``, ``seconds`` (wall time of executing every
    cell, kernel start excluded), ``peak_rss_mb`` (the kernel's peak resident memory).
    The notebooks on disk are not modified.
    """
    import nbformat
    from nbclient import NotebookClient

    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb")) if paths is None else [Path(p) for p in paths]
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(_PEAK_RSS_CELL))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        with client.setup_kernel():
            t0 = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            seconds = time.perf_counter() - t0
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        peak = float(text.split("PEAK_RSS_MB")[1].split()[0])
        rows.append({"notebook": path.name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak)})
    return rows


def _explorer_inputs() -> dict:
    """Arguments the lesson-4 widgets take from their notebook (as the notebook builds them)."""
    from .data import digits, mnist_sample
    from .models import train

    mnist = mnist_sample(seed=0)
    return {"gradient_matching_explorer": (mnist, train(mnist.train, seed=0)),
            "federated_explorer": (digits(seed=0),)}


def widget_latency() -> list[dict]:
    """Seconds per redraw of every ``*_explorer`` widget, for one change of each control.

    Numeric controls move one step up (or down at the maximum); dropdowns take their next
    option; checkboxes toggle. Widgets that need the notebook's data get it as their notebook builds it.
    Returns one dict per (widget, control).
    """
    import contextlib
    import io

    import matplotlib

    matplotlib.use("Agg")
    from . import widgets

    inputs = _explorer_inputs()
    rows = []
    for name in sorted(n for n in dir(widgets) if n.endswith("_explorer")):
        with contextlib.redirect_stdout(io.StringIO()):   # outside a kernel, display() prints
            box = getattr(widgets, name)(*inputs.get(name, ()))
        rows.append({"widget": name, "control": "(first draw)", "seconds": round(box.last_seconds, 2)})
        for cname, control in box.controls.items():
            with contextlib.redirect_stdout(io.StringIO()):
                if hasattr(control, "options"):
                    opts = [o[1] if isinstance(o, tuple) else o for o in control.options]
                    control.value = opts[(opts.index(control.value) + 1) % len(opts)]
                elif isinstance(control.value, bool):
                    control.value = not control.value
                else:
                    step = control.step
                    control.value = (control.value + step if control.value + step <= control.max
                                     else control.value - step)
            rows.append({"widget": name, "control": cname, "seconds": round(box.last_seconds, 2)})
    return rows


def _cmd(args) -> int:
    out = {}
    if not args.widgets_only:
        out["notebooks"] = notebook_costs(args.notebook or None)
        if not args.json:
            for row in out["notebooks"]:
                print(f"{row['notebook']:<36} {row['seconds']:7.1f} s   peak kernel RSS {row['peak_rss_mb']:6.0f} MB",
                      flush=True)
    if not args.notebooks_only:
        out["widgets"] = widget_latency()
        if not args.json:
            for row in out["widgets"]:
                print(f"{row['widget']:<28} {row['control']:<14} {row['seconds']:6.2f} s per redraw")
    if args.json:
        print(json.dumps(out))
    return 0


def add_parser(subparsers) -> None:
    """Register ``python -m labkit bench``."""
    p = subparsers.add_parser("bench", help="notebook run time, kernel memory, widget latency")
    p.add_argument("notebook", nargs="*", help="notebooks to run (default: all)")
    p.add_argument("--notebooks-only", action="store_true")
    p.add_argument("--widgets-only", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd)

"""Browser check of the lessons' widgets in a real JupyterLab (``make ui-test``; not part of
``make test``, since it needs Debian's chromium and the playwright package).

Starts JupyterLab (as root too: ``--allow-root``) on a free port over a scratch copy of
``notebooks/``, and for every notebook that builds a labkit widget (or those named on the
command line): opens it in headless Chromium, runs all cells, then in every widget panel
moves every control (a slider with the keyboard, a dropdown by choosing its next option,
a checkbox by clicking it), waits for the panel's figure to change and times it. A control
that is disabled (it does not apply to the current setting) is moved after the others, once
a dropdown has made it apply. It fails on console errors and page errors, on a control that
leaves the figure unchanged, and on a check cell (tag ``nbval-check-output``) whose output in
JupyterLab differs from the stored one beyond its tolerance (the notebook is saved
from the browser and read back). Each notebook's quiz is answered (a first option per
question, then "Check answers") and must give a verdict. Screenshots of each panel before
and after, and of each quiz, go to OUT_DIR.

Usage: python tests/ui_check.py [--out OUT_DIR] [--kernel-env NAME=VALUE] [NOTEBOOK ...]

The last line printed is the summary, e.g.
``ui-test: 10 notebooks, 39 controls moved, 10 quizzes answered, 0 console errors, 0 check cells differ``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = """() => { const s = document.querySelector('#jp-main-statusbar');
                  return s && /\\| Idle/.test(s.innerText); }"""
#: Run All is over: every code cell ran, or one raised (Run All stops there).
RUN_OVER = """() => {
    const s = document.querySelector('#jp-main-statusbar');
    if (!s || !/\\| Idle/.test(s.innerText)) return false;
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const error = document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]');
    return error !== null || prompts.every(e => /\\[\\d+\\]/.test(e.textContent)); }"""
RUN_ALL_TIMEOUT_MS = 900_000          # a notebook under load on a small machine
CHANGE_TIMEOUT_S = 120


def _conftest():
    spec = importlib.util.spec_from_file_location("notebook_checks", ROOT / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def widget_notebooks() -> list[str]:
    """Notebooks with a cell that builds a labkit widget."""
    out = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        if any("lk.widgets." in "".join(c["source"]) for c in cells if c["cell_type"] == "code"):
            out.append(path.name)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(panel) -> str:
    imgs = panel.locator(".widget-output img")
    if imgs.count() == 0:
        return ""
    return hashlib.sha1((imgs.first.get_attribute("src") or "").encode()).hexdigest()[:12]


def _read_when_written(path: Path, timeout: float = 30.0) -> dict:
    """The JSON in ``path`` once the server has finished writing it (a save changes the
    file's modification time before its last byte is on disk)."""
    deadline = time.time() + timeout
    while True:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def check_cells(stored_nb: Path, saved_nb: Path, conftest) -> list[dict]:
    """Each check cell's (tag ``nbval-check-output``) stored and JupyterLab output, and the problems."""
    def texts(cell):
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                parts.append("".join(o["text"]))
            elif "data" in o and "text/plain" in o["data"]:
                parts.append("".join(o["data"]["text/plain"]))
        return "".join(parts)

    stored = json.loads(stored_nb.read_text())["cells"]
    saved = _read_when_written(saved_nb)["cells"]
    rows = []
    for i, (a, b) in enumerate(zip(stored, saved)):
        if not conftest.is_check_cell(a):
            continue
        ref, new = texts(a), texts(b)
        tol = conftest.cell_tolerance(a)
        problems = (conftest.compare_text(ref, new, tol) if tol is not None
                    else ([] if ref == new else [f"stored {ref!r}, JupyterLab {new!r}"]))
        rows.append({"cell": i, "stored": ref, "jupyterlab": new, "problems": problems})
    return rows


class Lab:
    """A JupyterLab server on a free port over a scratch copy of the notebooks."""

    def __init__(self, kernel_env=None):
        self.work = Path(tempfile.mkdtemp(prefix="labkit-ui-work-"))
        shutil.copytree(ROOT / "notebooks", self.work / "notebooks")
        settings = self.work / "home/.jupyter/lab/user-settings/@jupyterlab/apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            '{"checkForUpdates": false, "fetchNews": "false"}')
        self.port, self.token = free_port(), secrets.token_hex(16)
        env = {**os.environ, "HOME": str(self.work / "home")}
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LABKIT_THREADS"):
            env.pop(var, None)          # the kernels get what a learner's kernel gets
        env.update(kernel_env or {})
        self.log = open(self.work / "jupyter.log", "w")
        self.server = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--allow-root",
             "--ip", "127.0.0.1", f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.work / 'notebooks'}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(240):
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                if self.server.poll() is not None:
                    raise RuntimeError(f"jupyter-lab exited: see {self.work / 'jupyter.log'}")
                time.sleep(0.5)
        raise RuntimeError("jupyter-lab did not answer within 120 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def close(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _wait_for_new_figure(page, panel, before: str, t0: float):
    """Seconds until the panel's figure differs from ``before``; whether "computing..." showed."""
    status = panel.locator(".labkit-status")
    saw_computing = False
    while True:
        if not saw_computing and status.count() and "computing" in status.first.inner_text():
            saw_computing = True
        now = digest(panel)
        if now and now != before and "updated in" in status.first.inner_text():
            return time.time() - t0, saw_computing
        if time.time() - t0 > CHANGE_TIMEOUT_S:
            raise AssertionError("the figure did not change")
        page.wait_for_timeout(100)


def _move(page, control) -> str:
    """Move one control the way a learner does; returns what kind of control it was."""
    classes = control.get_attribute("class") or ""
    if "widget-slider" in classes:
        readout = control.locator(".widget-readout").first
        before = readout.inner_text()
        control.locator(".noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        if readout.inner_text() == before:          # at the maximum: one step down instead
            page.keyboard.press("ArrowLeft")
        return "slider"
    if "widget-dropdown" in classes:
        select = control.locator("select").first
        values = select.locator("option").evaluate_all("os => os.map(o => o.value)")
        current = select.evaluate("s => s.value")
        select.click()
        select.select_option(values[(values.index(current) + 1) % len(values)])
        page.keyboard.press("Escape")
        return "dropdown"
    if "widget-checkbox" in classes:
        control.locator("input[type=checkbox]").first.click()
        return "checkbox"
    raise AssertionError(f"unknown control kind: {classes}")


def drive_panel(page, panel, index: int, nb: str, out: Path) -> list[dict]:
    """Move every control of one panel; one row per move."""
    panel.scroll_into_view_if_needed()
    expect(panel.locator(".widget-output img").first).to_be_visible(timeout=120_000)
    title = panel.locator(".widget-html b").first.inner_text() if panel.locator(".widget-html b").count() else ""
    panel.screenshot(path=str(out / f"{nb[:2]}_panel{index}_before.png"))
    controls = panel.locator(".widget-slider, .widget-dropdown, .widget-checkbox")
    n = controls.count()
    pending, rows, dropdown_moves = list(range(n)), [], 0
    while pending:
        i = pending.pop(0)
        control = controls.nth(i)
        disabled = control.locator("select:disabled, input:disabled, .noUi-target[disabled]").count() > 0
        if disabled:                 # move the first dropdown (one row), then retry this control
            if dropdown_moves > 3 * n:
                raise AssertionError(f"{nb} panel {index}: control {i} stays disabled")
            first_dropdown = next(j for j in range(n) if "widget-dropdown" in (controls.nth(j).get_attribute("class") or ""))
            pending.insert(0, i)
            i, control = first_dropdown, controls.nth(first_dropdown)
            dropdown_moves += 1
        label = control.locator(".widget-label").first.inner_text() if control.locator(".widget-label").count() else ""
        before = digest(panel)
        t0 = time.time()
        kind = _move(page, control)
        try:
            seconds, saw = _wait_for_new_figure(page, panel, before, t0)
        except AssertionError:
            panel.screenshot(path=str(out / f"{nb[:2]}_panel{index}_stuck_{i}.png"))
            raise AssertionError(f"{nb} panel {index} ({title}): {kind} {label!r} left the figure unchanged")
        rows.append({"notebook": nb, "panel": title, "control": label, "kind": kind,
                     "seconds_to_new_figure": round(seconds, 2), "saw_computing": saw})
        print(f"  {title[:40]:<40} {kind:<9} {label[:24]:<24} {seconds:6.2f} s", flush=True)
    panel.screenshot(path=str(out / f"{nb[:2]}_panel{index}_after.png"))
    return rows


def drive_quiz(page, quiz, nb: str, out: Path) -> dict:
    """Answer every question of a quiz with its first option, press "Check answers" and read
    the verdict, as a learner does."""
    quiz.scroll_into_view_if_needed()
    boxes = quiz.locator(".widget-radio-box")
    for i in range(boxes.count()):
        boxes.nth(i).locator("input[type=radio]").first.click()
    t0 = time.time()
    quiz.locator("button:has-text('Check answers')").first.click()
    result = quiz.locator(".labkit-quiz-result")
    while "right." not in result.inner_text():
        if time.time() - t0 > CHANGE_TIMEOUT_S:
            quiz.screenshot(path=str(out / f"{nb[:2]}_quiz_stuck.png"))
            raise AssertionError(f"{nb}: the quiz gave no verdict")
        page.wait_for_timeout(100)
    text = result.inner_text()
    if f"of {boxes.count()} right" not in text or "not answered" in text:
        raise AssertionError(f"{nb}: the quiz's verdict is wrong: {text[:200]}")
    quiz.screenshot(path=str(out / f"{nb[:2]}_quiz.png"))
    print(f"  quiz: {boxes.count()} questions answered, {text.splitlines()[0]} in {time.time() - t0:.2f} s", flush=True)
    return {"notebook": nb, "questions": boxes.count(), "verdict": text.splitlines()[0]}


def drive_notebook(ctx, lab: Lab, nb: str, out: Path, conftest) -> dict:
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    t0 = time.time()
    page.goto(f"{lab.url}/lab/tree/{nb}?reset&token={lab.token}")
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    page.wait_for_timeout(2000)
    page.wait_for_function(RUN_OVER, timeout=RUN_ALL_TIMEOUT_MS, polling=1000)
    run_all = time.time() - t0
    error = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    if error.count():
        page.screenshot(path=str(out / f"{nb[:2]}_error.png"))
        raise AssertionError(f"a cell raised during Run All: {error.first.inner_text()[-600:]}")
    print(f"{nb}: run all {run_all:.0f} s", flush=True)
    page.screenshot(path=str(out / f"{nb[:2]}_after_run_all.png"))
    panels = page.locator(".labkit-panel")
    moves, n_panels = [], panels.count()
    for k in range(n_panels):
        moves += drive_panel(page, panels.nth(k), k, nb, out)
    quizzes = page.locator(".labkit-quiz")
    answered = [drive_quiz(page, quizzes.nth(k), nb, out) for k in range(quizzes.count())]
    # save from the browser, read the file back: the check cells' JupyterLab outputs
    path = f"/api/contents/{nb}?content=0"
    before = lab.api("GET", path)["last_modified"]
    page.click("li.lm-MenuBar-item:has-text('File')")
    page.click("li.lm-Menu-item[data-command='docmanager:save']")
    deadline = time.time() + 30
    while lab.api("GET", path)["last_modified"] == before:
        if time.time() > deadline:
            raise AssertionError(f"{nb}: save did not reach disk")
        time.sleep(0.2)
    checks = check_cells(ROOT / "notebooks" / nb, lab.work / "notebooks" / nb, conftest)
    page.close()
    lab.shutdown_kernels()                  # a kernel holds ~1 GB: one at a time
    return {"notebook": nb, "run_all_s": round(run_all, 1), "panels": n_panels,
            "moves": moves, "quizzes": answered, "errors": errors, "checks": checks}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="default: every notebook with a labkit widget")
    ap.add_argument("--out", default=None, help="screenshots and result.json (default: a temp dir)")
    ap.add_argument("--kernel-env", action="append", default=[], metavar="NAME=VALUE",
                    help="set a variable for the kernels, e.g. LABKIT_THREADS=2 (default: none)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="labkit-ui-"))
    out.mkdir(parents=True, exist_ok=True)
    notebooks = args.notebooks or widget_notebooks()
    conftest = _conftest()
    t_start, results, failures = time.time(), [], []
    lab = Lab(dict(kv.split("=", 1) for kv in args.kernel_env))
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                       headless=True, args=ARGS,
                                                       viewport={"width": 1400, "height": 1100})
            for nb in notebooks:
                try:
                    results.append(drive_notebook(ctx, lab, nb, out, conftest))
                except Exception as exc:                # record it, go on with the next notebook
                    failures.append(f"{nb}: {exc}")
                    print(f"FAILED {nb}: {exc}", flush=True)
                    lab.shutdown_kernels()
            ctx.close()
    finally:
        lab.close()
    errors = [e for r in results for e in r["errors"]]
    differ = [dict(c, notebook=r["notebook"]) for r in results for c in r["checks"] if c["problems"]]
    moves = [m for r in results for m in r["moves"]]
    summary = {"seconds": round(time.time() - t_start), "notebooks": results, "failures": failures,
               "screenshots": str(out)}
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    for e in errors:
        print("  ", e[:300])
    for c in differ:
        print(f"   check cell differs: {c['notebook']} cell {c['cell']}: {c['problems']}")
    slowest = max((m["seconds_to_new_figure"] for m in moves), default=0.0)
    print(f"details: {out / 'result.json'}; slowest control -> new figure {slowest:.1f} s; "
          f"took {summary['seconds']} s")
    quizzes = sum(len(r["quizzes"]) for r in results)
    print(f"ui-test: {len(results)} notebooks, {len(moves)} controls moved, {quizzes} quizzes answered, "
          f"{len(errors)} console errors, "
          f"{len(differ)} check cells differ" + (f", {len(failures)} notebooks FAILED" if failures else ""))
    return 1 if (failures or errors or differ) else 0


if __name__ == "__main__":
    sys.exit(main())

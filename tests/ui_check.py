"""Browser check of a lesson's widgets in a real JupyterLab (``make ui-test``; not part of
``make test``, since it needs Debian's chromium and the playwright package).

Starts JupyterLab on a scratch copy of ``notebooks/``, opens a notebook in headless
Chromium, runs all cells, moves a slider of the first labkit widget panel with the keyboard
and waits for its figure to change. Prints the timings; screenshots go to OUT_DIR.

Usage: python tests/ui_check.py [NOTEBOOK] [OUT_DIR]
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = sys.argv[1] if len(sys.argv) > 1 else "01_label_flipping.ipynb"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="labkit-ui-"))
PORT, TOKEN = 8899, "labkit-ui-check"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = """() => { const s = document.querySelector('#jp-main-statusbar');
                  return s && /Python 3 \\(ipykernel\\) \\| Idle/.test(s.innerText); }"""


def digest(locator) -> str:
    return hashlib.sha1(locator.get_attribute("src").encode()).hexdigest()[:12]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="labkit-ui-work-"))
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    settings = work / "home/.jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"checkForUpdates": false, "fetchNews": "false"}')
    env = {**os.environ, "HOME": str(work / "home")}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--allow-root", "--ip", "127.0.0.1",
         f"--port={PORT}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work / 'notebooks'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timings, t0 = {}, time.time()
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/status?token={TOKEN}")
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            ctx = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                       headless=True, args=ARGS,
                                                       viewport={"width": 1400, "height": 1100})
            page = ctx.pages[0]
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{PORT}/lab/tree/{NOTEBOOK}?reset&token={TOKEN}")
            page.wait_for_function(IDLE, timeout=120_000)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                                          .every(e => /\\[\\d+\\]/.test(e.textContent))""", timeout=300_000)
            page.wait_for_function(IDLE, timeout=300_000)
            timings["run_all_s"] = round(time.time() - t0, 1)
            panel = page.locator(".widget-vbox:has(.widget-slider)").first
            panel.scroll_into_view_if_needed()
            img = panel.locator(".widget-output img").first
            expect(img).to_be_visible(timeout=60_000)
            before = digest(img)
            panel.screenshot(path=str(OUT / "widget_before.png"))
            handle = panel.locator(".noUi-handle").last            # the last slider of the panel
            handle.focus()
            t1 = time.time()
            page.keyboard.press("ArrowRight")
            while digest(panel.locator(".widget-output img").first) == before:
                if time.time() - t1 > 60:
                    raise AssertionError("the figure did not change after moving the slider")
                time.sleep(0.1)
            timings["slider_to_new_figure_s"] = round(time.time() - t1, 2)
            panel.screenshot(path=str(OUT / "widget_after.png"))
            widget_errors = [e for e in errors if "widget" in e.lower()]
            assert not widget_errors, widget_errors
            ctx.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"notebook": NOTEBOOK, **timings, "screenshots": str(OUT)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

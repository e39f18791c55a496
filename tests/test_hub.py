"""The workshop hub, for real: JupyterHub with two learners and an instructor, on 127.0.0.1;
and the sizing arithmetic that turns the load test's numbers into a server (always runs).

Learner A cannot read B's home folder, reach B's server or kernels (token or cookie), and is not
a hub admin; the instructor is. Servers run as the learner's own OS user, with TMPDIR inside
their home and their cgroup's memory limit. Idle servers are culled.

Run with ``make hub-test`` (as root; it installs the hub environment under /opt/poisoning-lab
first, then sets LAB_HUB_TEST=1). The accounts hubtesta, hubtestb and hubtestadmin are made
for this test and removed afterwards (userdel -r).
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy"))
ROOT = Path(os.environ.get("LAB_HUB_ROOT", "/opt/poisoning-lab"))
A, B, ADMIN = "hubtesta", "hubtestb", "hubtestadmin"
PORTS = {"port": 18765, "hub_port": 18081, "proxy_api_port": 18001}


def _why_skip():
    if os.environ.get("LAB_HUB_TEST") != "1":
        return "starts a real multi-user hub: run `make hub-test` (sets LAB_HUB_TEST=1)"
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (creates OS accounts)"
    import hubctl

    if not hubctl.installed(ROOT):
        return f"no hub environment under {ROOT}: run `python3 deploy/hubctl.py install`"
    if not shutil.which("runuser"):
        return "needs runuser"
    return None


needs_hub = pytest.mark.skipif(_why_skip() is not None, reason=str(_why_skip()))


def arun(fn, settings):
    """Run ``await fn(hub)`` with a client made inside the event loop."""
    from hubclient import Hub

    async def go():
        return await fn(Hub(f"http://127.0.0.1:{settings['port']}"))
    return asyncio.run(go())


def as_user(user, *cmd):
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True)


@pytest.fixture(scope="module")
def hub():
    import hubctl

    state = ROOT / "state-test"
    hubctl.stop(root=ROOT, state=state)              # a hub left over by an interrupted run
    hubctl.remove_users([A, B, ADMIN])
    shutil.rmtree(state, ignore_errors=True)
    hubctl.ensure_users([A, B, ADMIN])
    try:
        settings = hubctl.start(root=ROOT, state=state, learners=[A, B], admin=ADMIN, **PORTS)
        settings["passwords"] = {A: "alpha-secret", B: "bravo-secret"}

        async def setup(h):
            tokens = {}
            for name in (A, B):
                await h.login(name, settings["passwords"][name], settings["workshop_code"])   # first use
                tokens[name] = await h.user_token(settings["service_token"], name, note="test")
                await h.start_server(name, tokens[name])
            tokens[ADMIN] = await h.user_token(settings["service_token"], ADMIN, note="test")
            return tokens
        settings["tokens"] = arun(setup, settings)
        yield settings
    finally:
        hubctl.stop(root=ROOT, state=state)
        hubctl.remove_users([A, B, ADMIN])
        shutil.rmtree(state, ignore_errors=True)


@needs_hub
def test_homes_are_private_and_hold_the_learners_own_notebooks(hub):
    nb_b = Path(f"/home/{B}/poisoning-lab/00_welcome.ipynb")
    assert as_user(B, "head", "-c", "1", str(nb_b)).returncode == 0     # delivered on first spawn
    assert nb_b.stat().st_uid == int(as_user(B, "id", "-u").stdout)
    assert Path(f"/home/{B}").stat().st_mode & 0o777 == 0o700
    read = as_user(A, "cat", str(nb_b))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    assert as_user(A, "ls", f"/home/{B}").returncode != 0
    assert as_user(A, "touch", f"/home/{B}/planted").returncode != 0
    assert not Path(f"/home/{B}/planted").exists()


@needs_hub
def test_a_token_reaches_its_own_server_only(hub):
    tok = hub["tokens"][A]

    async def go(h):
        own = await h.request("GET", f"/user/{A}/api/status", token=tok)
        other = await h.request("GET", f"/user/{B}/api/status", token=tok)
        kernels = await h.request("POST", f"/user/{B}/api/kernels", token=tok, body={"name": "python3"})
        files = await h.request("GET", f"/user/{B}/api/contents/poisoning-lab", token=tok)
        return own[0], other[0], kernels[0], files[0]
    own, other, kernels, files = arun(go, hub)
    assert own == 200
    assert other == 403 and kernels == 403 and files == 403


@needs_hub
def test_a_login_cookie_reaches_its_own_server_only(hub):
    async def go(h):
        cookies = await h.login(A, hub["passwords"][A])
        own_lab = await h.browse(f"/user/{A}/lab", cookies)          # OAuth: the server's own cookie
        own_api = await h.browse(f"/user/{A}/api/status", cookies)
        other_lab = await h.browse(f"/user/{B}/lab", cookies)
        other_api = await h.browse(f"/user/{B}/api/status", cookies)
        return own_lab, own_api, other_lab, other_api
    own_lab, own_api, other_lab, other_api = arun(go, hub)
    assert own_lab[0] == 200 and own_api[0] == 200, (own_lab, own_api)
    assert other_lab[0] == 403 and other_api[0] == 403, (other_lab, other_api)


@needs_hub
def test_only_the_instructor_is_a_hub_admin(hub):
    async def go(h):
        learner = await h.request("GET", "/hub/api/users", token=hub["tokens"][A])
        admin = await h.request("GET", "/hub/api/users", token=hub["tokens"][ADMIN])
        stop_b = await h.request("DELETE", f"/hub/api/users/{B}/server", token=hub["tokens"][A])
        b_after = await h.api("GET", f"/users/{B}", token=hub["tokens"][ADMIN])
        return learner[0], admin[0], json.loads(admin[2]), stop_b[0], b_after
    learner, admin, users, stop_b, b_after = arun(go, hub)
    assert learner == 403
    assert stop_b in (403, 404) and b_after["servers"][""]["ready"]   # hidden from A, still running
    assert admin == 200
    flags = {u["name"]: u["admin"] for u in users}
    assert flags == {A: False, B: False, ADMIN: True}


@needs_hub
def test_workshop_login_rules(hub):
    from hubclient import HubError

    async def attempt(h, name, password, code=""):
        try:
            await h.login(name, password, code)
            return True
        except HubError:
            return False

    async def go(h):
        return [await attempt(h, A, hub["passwords"][A]),                     # own password
                await attempt(h, A, "taken-over!", hub["workshop_code"]),     # code cannot reclaim
                await attempt(h, A, "wrong-password"),
                await attempt(h, "hubtestz", "a-password", hub["workshop_code"]),   # not on the list
                await attempt(h, ADMIN, hub["admin_password"])]
    assert arun(go, hub) == [True, False, False, False, True]


@needs_hub
def test_kernel_runs_as_the_learner_with_a_private_temp_folder(hub):
    import cgroups

    code = ("import getpass, json, os, tempfile\n"
            "from labkit.supplychain import payloads\n"
            "w = payloads.make_workdir()\n"
            "print('RESULT', json.dumps({'user': getpass.getuser(), 'tmp': tempfile.gettempdir(),\n"
            "  'mode': oct(os.stat(tempfile.gettempdir()).st_mode & 0o777), 'workdir': str(w),\n"
            "  'learner': os.environ.get('LAB_LEARNER'), 'omp': os.environ.get('OMP_NUM_THREADS'),\n"
            "  'cgroup': open('/proc/self/cgroup').read()}))")

    async def go(h):
        kernel = await h.kernel(A, hub["tokens"][A], path="poisoning-lab")
        try:
            return await kernel.execute(code, timeout=300)
        finally:
            await kernel.shutdown()
    got = arun(go, hub)
    assert got["status"] == "ok", got["error"]
    info = json.loads(got["stdout"].split("RESULT", 1)[1])
    assert info["user"] == A and info["learner"] == A and info["omp"] == "1"
    assert info["tmp"] == f"/home/{A}/.tmp" and info["mode"] == "0o700"
    assert info["workdir"].startswith(f"/home/{A}/.tmp/labkit-")
    assert as_user(B, "ls", info["workdir"]).returncode != 0
    if cgroups.mode() == "none":
        pytest.skip("no writable cgroup hierarchy here: memory limits are not enforced")
    assert f"poisoning-lab/{A}" in info["cgroup"]
    folder = cgroups.dirs(A, own=hub["cgroup_parent"])["memory"]
    limit_file = folder / ("memory.limit_in_bytes" if cgroups.mode() == "v1" else "memory.max")
    assert int(limit_file.read_text()) == 2 * 2**30


@needs_hub
def test_idle_servers_are_culled():
    """A second, short-lived hub whose culler stops servers idle for 30 s (checked every 15 s)."""
    import hubctl
    from hubclient import Hub

    state, name = ROOT / "state-test-cull", "hubtestc"
    hubctl.stop(root=ROOT, state=state)
    hubctl.remove_users([name])
    hubctl.ensure_users([name])
    try:
        s = hubctl.start(root=ROOT, state=state, learners=[name], admin=ADMIN, port=18766, hub_port=18082,
                         proxy_api_port=18002, cull_timeout=30)

        async def go():
            h = Hub("http://127.0.0.1:18766")
            token = await h.user_token(s["service_token"], name, note="test")
            await h.start_server(name, token)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 120:
                if not (await h.api("GET", f"/users/{name}", token=token)).get("servers"):
                    return time.monotonic() - t0
                await asyncio.sleep(2)
            return None
        idle_for = asyncio.run(go())
    finally:
        hubctl.stop(root=ROOT, state=state)
        hubctl.remove_users([name])
        shutil.rmtree(state, ignore_errors=True)
    assert idle_for is not None and idle_for >= 15, idle_for   # culled, and not at once


# ---- sizing (deploy/sizing.py): no hub needed ------------------------------------------------

def _results(tmp_path, rows, summary):
    path = tmp_path / "load.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows + [dict(summary, summary=True)]) + "\n")
    return path


def test_sizing_follows_the_tljh_rule_on_hand_worked_numbers(tmp_path):
    import sizing

    row = {"learner": "learner01", "notebook": "00_welcome.ipynb", "wall_s": 20.0, "cpu_s": 10.0,
           "peak_kernel_rss_mb": 800, "peak_learner_mb": 1000, "peak_server_rss_mb": 150, "failures": []}
    failed = dict(row, learner="learner02", peak_learner_mb=9999, failures=["boom"])   # ignored
    path = _results(tmp_path, [row, failed], {"learners": 2, "cores": 2, "mem_peak_delta_mb": 1800})
    bench = {"notebooks": [{"notebook": "00_welcome.ipynb", "seconds": 10.0, "peak_rss_mb": 800},
                           {"notebook": "05_defence_in_depth.ipynb", "seconds": 30.0, "peak_rss_mb": 1200}]}
    rows, summary = sizing.load(path)
    u = sizing.per_learner(rows, summary, bench)
    # memory: max(cgroup 1000, machine 1800 / 2 = 900) + (1200 - 800) MB for the heaviest lesson
    assert u["mem_mb"] == 1400 and u["cpu_cores"] == 1.0
    summary_more = dict(summary, mem_peak_delta_mb=2400)       # now the machine's view is larger
    assert sizing.per_learner(rows, summary_more, bench)["mem_mb"] == 1200 + 400
    # 20 learners, 60% -> 12 at once: (12 x 1400 + 128) x 1.3 = 22006 MB -> 22 GB; 12 x 1.0 x 1.2 -> 15 cores
    assert sizing.plan(20, u, 0.6) == {"concurrent": 12, "ram_gb": 22, "cores": 15}
    # all 20 at once: (20 x 1400 + 128) x 1.3 = 36566 MB -> 36 GB; 24 cores
    assert sizing.plan(20, u, 1.0) == {"concurrent": 20, "ram_gb": 36, "cores": 24}
    # a pod: heaviest kernel RSS 1200 + server 150 = 1350 -> 1408M (64 MB steps); x 1.5 -> 2304M (256 MB steps)
    z = sizing.z2jh(u, str(path))
    assert (z["mem_guarantee"], z["mem_limit"], z["cpu_guarantee"], z["cpu_limit"]) == ("1408M", "2304M", 0.5, 1.0)
    text = sizing.render_z2jh(u, str(path))
    assert "guarantee: 1408M" in text and "limit: 2304M" in text and "learner30" in text
    assert "| 20 | 12 | 22 GB | 15 | 36 GB | 24 |" in sizing.table(u, summary)


def test_sizing_refuses_a_run_with_no_successful_learner(tmp_path):
    import sizing

    path = _results(tmp_path, [{"learner": "learner01", "failures": ["timeout"]}], {"learners": 1, "cores": 2})
    with pytest.raises(SystemExit):
        sizing.load(path)


def test_load_test_spreads_arrivals_over_the_stagger_as_a_room_logs_in():
    import hub_load

    assert hub_load.arrivals(4, 120.0) == [0.0, 40.0, 80.0, 120.0]
    assert hub_load.arrivals(30, 0.0) == [0.0] * 30          # everyone at once
    assert hub_load.arrivals(1, 120.0) == [0.0]
    with pytest.raises(ValueError, match="stagger"):
        hub_load.arrivals(3, -1.0)

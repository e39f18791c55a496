#!/usr/bin/env python3
"""Install, start and stop the workshop hub (run as root; standard library only).

    python3 deploy/hubctl.py install                 # hub + learner environments under /opt/poisoning-lab
    python3 deploy/hubctl.py start --learners 30     # accounts learner01..learner30 + instructor, then the hub
    python3 deploy/hubctl.py status
    python3 deploy/hubctl.py stop
    python3 deploy/hubctl.py reset-password learner07
    python3 deploy/hubctl.py remove-users learner01 ...   # userdel -r (after the hub is stopped)

``make hub`` / ``make hub-stop`` call these. Everything listens on 127.0.0.1 only.

Layout (``--root``, default /opt/poisoning-lab; world-readable except ``state``):
  hubenv/   the hub (JupyterHub, idle culler), a venv of Debian's /usr/bin/python3
  labenv/   every learner's environment: the lab's requirements.txt, JupyterHub's single-user
            server, labkit installed editable from lab/ (so its data/ folder resolves)
  lab/      a copy of the lab (labkit/, data/, notebooks/) that learners can read
  proxy/    configurable-http-proxy from npm
  state/    root only (700): database, cookie secret, settings (workshop code, key, service
            token), password hashes, pid and log files
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import cgroups  # noqa: E402

DEFAULT_ROOT = Path(os.environ.get("LAB_HUB_ROOT", "/opt/poisoning-lab"))
BASE_PYTHON = os.environ.get("LAB_HUB_PYTHON", "/usr/bin/python3")
PROXY_VERSION = "5.3.0"
COPY_ITEMS = ("labkit", "data", "notebooks", "pyproject.toml", "README.md", "requirements.txt")


def log(msg: str) -> None:
    print(f"[hub] {msg}", flush=True)


def run(cmd, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kw)


# ---- install -------------------------------------------------------------------------------

def _lab_requirements() -> list[str]:
    """requirements.txt without its ``-e .`` line (labkit is installed from the lab copy)."""
    lines = _committed("requirements.txt").decode().splitlines()
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "-e"))]


def pip_source(wheelhouse) -> list[str]:
    """Where pip looks: ``--no-index --find-links WHEELHOUSE`` for a wheelhouse made for the
    current requirements; only ``--find-links`` (network for the rest) for an older one; else
    nothing (the configured indexes)."""
    wh = Path(wheelhouse) if wheelhouse else None
    if wh is None or not wh.is_dir() or not any(wh.glob("*.whl")):
        return []
    fresh = all((wh / name).exists() and (wh / name).read_bytes() == _committed(rel)
                for name, rel in (("requirements.txt", "requirements.txt"),
                                  ("requirements-hub.txt", "deploy/requirements-hub.txt")))
    if not fresh:
        log(f"{wh} was made for other requirements: using it, plus the network for the rest "
            "(run make wheelhouse to refresh it)")
    return (["--no-index"] if fresh else []) + ["--find-links", str(wh.resolve())]


def _committed(name: str) -> bytes:
    """A file as committed (``git show HEAD:name``) in a git checkout, else as on disk."""
    if (REPO / ".git").exists() and shutil.which("git"):
        got = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{name}"], capture_output=True)
        if got.returncode == 0:
            return got.stdout
    return (REPO / name).read_bytes()


def _stamp_text() -> str:
    h = hashlib.sha256()
    for name in ("requirements.txt", "deploy/requirements-hub.txt", "pyproject.toml"):
        h.update(_committed(name))
    return h.hexdigest()


def copy_lab(root: Path) -> Path:
    """A learner-readable copy of the lab under ``root/lab``: the committed files (``git archive
    HEAD``) in a git checkout, so half-finished local edits never reach a room; else the folder."""
    lab = root / "lab"
    lab.mkdir(parents=True, exist_ok=True)
    for item in COPY_ITEMS:
        dst = lab / item
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
    if (REPO / ".git").exists() and shutil.which("git"):
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", *COPY_ITEMS],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(lab)], input=archive, check=True)
        return lab
    for item in COPY_ITEMS:
        src, dst = REPO / item, lab / item
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints"))
        elif src.exists():
            shutil.copy2(src, dst)
    return lab


def install(root: Path = DEFAULT_ROOT, *, wheelhouse=REPO / "wheelhouse", force: bool = False) -> None:
    """Build (or refresh) hubenv, labenv, the lab copy and the proxy under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    src = pip_source(wheelhouse)
    log("pip source: " + (" ".join(src) if src else "the configured indexes"))
    lab = copy_lab(root)
    stamp = _stamp_text()
    for env, reqs in (("hubenv", ["-r", REPO / "deploy/requirements-hub.txt"]),
                      ("labenv", ["-r", root / "lab-requirements.txt", "-r", REPO / "deploy/requirements-hub.txt"])):
        venv = root / env
        done = venv / ".installed"
        if not force and done.exists() and done.read_text() == stamp:
            log(f"{env}: up to date")
            continue
        if env == "labenv":
            (root / "lab-requirements.txt").write_text("\n".join(_lab_requirements()) + "\n")
        t0 = time.monotonic()
        if not (venv / "bin" / "python").exists():
            run([BASE_PYTHON, "-m", "venv", venv])
        pip = [venv / "bin" / "python", "-m", "pip", "install", "-qq", *src]
        run(pip + reqs)
        if env == "labenv":
            run(pip + ["--no-deps", "-e", lab])
        done.write_text(stamp)
        log(f"{env}: installed in {time.monotonic() - t0:.0f} s")
    proxy = root / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
    if force or not proxy.exists():
        cache = Path(wheelhouse) / "npm-cache" if wheelhouse else None
        npm = ["npm", "install", "--no-audit", "--no-fund", "--prefix", root / "proxy"]
        if cache is not None and cache.is_dir():
            npm += ["--offline", "--cache", cache]
        run(npm + [f"configurable-http-proxy@{PROXY_VERSION}"])
    run(["chmod", "-R", "a+rX", root / "hubenv", root / "labenv", lab, root / "proxy"])


def installed(root: Path = DEFAULT_ROOT) -> bool:
    return ((root / "labenv" / ".installed").exists() and (root / "hubenv" / ".installed").exists()
            and (root / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy").exists())


# ---- accounts ------------------------------------------------------------------------------

def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_users(names) -> list[str]:
    """Create missing OS accounts (home folders mode 700); returns the names it created."""
    created = []
    for name in names:
        if not user_exists(name):
            run(["useradd", "--create-home", "--shell", "/bin/bash", name])
            created.append(name)
        os.chmod(pwd.getpwnam(name).pw_dir, 0o700)
    return created


def remove_users(names) -> None:
    """``userdel -r`` each account (its processes stopped first)."""
    for name in names:
        if not user_exists(name):
            continue
        cgroups.release(name)
        subprocess.run(["userdel", "-r", name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if user_exists(name):
            raise RuntimeError(f"could not remove user {name}")


def learner_names(n: int, prefix: str = "learner") -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(1, n + 1)]


# ---- start / stop --------------------------------------------------------------------------

def _secret_code(n: int = 6) -> str:
    alphabet = "".join(c for c in string.ascii_uppercase + string.digits if c not in "O0I1")
    return "".join(secrets.choice(alphabet) for _ in range(n))


def settings_path(state: Path) -> Path:
    return state / "settings.json"


def load_settings(state: Path) -> dict:
    return json.loads(settings_path(state).read_text())


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def hub_pid(state: Path):
    try:
        pid = int((state / "hub.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _get(url: str, token: str | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def start(*, root: Path = DEFAULT_ROOT, state: Path | None = None, learners=(), admin: str = "instructor",
          port: int = 8765, hub_port: int = 8081, proxy_api_port: int = 8001, mem_limit: str = "2G",
          cpu_limit: float = 1.0, cull_timeout: int = 3600, timeout: float = 120.0) -> dict:
    """Start the hub in the background (accounts must exist); returns its settings (with secrets)."""
    state = root / "state" if state is None else Path(state)
    if hub_pid(state):
        raise RuntimeError(f"a hub is already running (pid {hub_pid(state)}); stop it first")
    if not installed(root):
        raise RuntimeError(f"no hub environment under {root}: run `python3 deploy/hubctl.py install`")
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    old = load_settings(state) if settings_path(state).exists() else {}
    settings = {
        "root": str(root), "state": str(state), "repo": str(REPO),
        "port": port, "hub_port": hub_port, "proxy_api_port": proxy_api_port,
        "learners": sorted(learners), "admin": admin, "mem_limit": mem_limit, "cpu_limit": cpu_limit,
        "cull_timeout": cull_timeout, "cgroup_parent": cgroups.own_paths(),
        "workshop_code": old.get("workshop_code") or _secret_code(),
        "workshop_key": old.get("workshop_key") or secrets.token_urlsafe(24),
        "service_token": old.get("service_token") or secrets.token_hex(32),
        "admin_password": old.get("admin_password") or secrets.token_urlsafe(12),
    }
    _write_private(settings_path(state), json.dumps(settings, indent=1))
    from passwords import hash_password, load_passwords, save_passwords

    table = load_passwords(state / "passwords.json")
    table[admin] = hash_password(settings["admin_password"])
    save_passwords(state / "passwords.json", table)

    env = dict(os.environ, LAB_HUB_SETTINGS=str(settings_path(state)),
               PATH=f"{root / 'hubenv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    logf = open(state / "jupyterhub.log", "ab")
    proc = subprocess.Popen([root / "hubenv" / "bin" / "jupyterhub", "-f", HERE / "jupyterhub_config.py"],
                            cwd=state, env=env, stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    logf.close()
    (state / "hub.pid").write_text(str(proc.pid))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited with code {proc.returncode}; see {state / 'jupyterhub.log'}")
        try:
            if _get(f"{url}/hub/api/", timeout=2)[0] == 200:
                break
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop(state=state)
            raise RuntimeError(f"the hub did not answer within {timeout:.0f} s; see {state / 'jupyterhub.log'}")
        time.sleep(0.5)
    settings["url"] = url
    settings["pid"] = proc.pid
    return settings


def stop(*, root: Path = DEFAULT_ROOT, state: Path | None = None, grace: float = 30.0) -> bool:
    """Stop the hub (it stops the learners' servers, the proxy and the culler), then any leftovers."""
    state = root / "state" if state is None else Path(state)
    pid = hub_pid(state)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while hub_pid(state) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if hub_pid(state):
            os.killpg(pid, signal.SIGKILL)
    for name in ("jupyterhub-proxy.pid",):
        try:
            ppid = int((state / name).read_text())
            os.kill(ppid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
    own = load_settings(state).get("cgroup_parent") if settings_path(state).exists() else None
    cgroups.release_all(own=own)
    (state / "hub.pid").unlink(missing_ok=True)
    return pid is not None


def reset_password(name: str, *, state: Path) -> bool:
    from passwords import load_passwords, save_passwords

    if not (state / "passwords.json").exists():
        return False
    table = load_passwords(state / "passwords.json")
    found = table.pop(name, None) is not None
    save_passwords(state / "passwords.json", table)
    return found


# ---- command line --------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hubctl", description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--state", type=Path, default=None)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("install")
    s.add_argument("--wheelhouse", type=Path, default=REPO / "wheelhouse")
    s.add_argument("--force", action="store_true")
    s = sub.add_parser("start")
    s.add_argument("--learners", type=int, default=30)
    s.add_argument("--admin", default="instructor")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--hub-port", type=int, default=8081)
    s.add_argument("--proxy-api-port", type=int, default=8001)
    s.add_argument("--mem", default="2G", help="per-learner memory limit (cgroup), e.g. 2G")
    s.add_argument("--cpu", type=float, default=1.0, help="per-learner CPU limit in cores (cgroup)")
    s.add_argument("--cull-timeout", type=int, default=3600, help="stop servers idle this many seconds")
    sub.add_parser("stop")
    sub.add_parser("status")
    s = sub.add_parser("reset-password")
    s.add_argument("names", nargs="+")
    s = sub.add_parser("remove-users")
    s.add_argument("names", nargs="+")
    args = p.parse_args(argv)
    state = args.state or args.root / "state"
    if os.geteuid() != 0:
        print("error: run as root (the hub creates accounts and starts servers as each learner)", file=sys.stderr)
        return 2
    if args.cmd == "install":
        install(args.root, wheelhouse=args.wheelhouse, force=args.force)
    elif args.cmd == "start":
        names = learner_names(args.learners)
        created = ensure_users(names + [args.admin])
        log(f"accounts: {len(names)} learners ({names[0]}..{names[-1]}) + {args.admin}; {len(created)} new")
        s = start(root=args.root, state=state, learners=names, admin=args.admin, port=args.port,
                  hub_port=args.hub_port, proxy_api_port=args.proxy_api_port, mem_limit=args.mem,
                  cpu_limit=args.cpu, cull_timeout=args.cull_timeout)
        print(f"\nThe workshop hub is running (pid {s['pid']}): {s['url']}/hub/login\n"
              f"  learners: {names[0]} .. {names[-1]}; first login: workshop code {s['workshop_code']} "
              f"+ a password of their choice\n"
              f"  instructor: {args.admin} / {s['admin_password']}   (admin panel: {s['url']}/hub/admin)\n"
              f"  progress:  python -m labkit progress report --key {s['workshop_key']} /home\n"
              f"  stop it:   make hub-stop\n", flush=True)
    elif args.cmd == "stop":
        log("stopped" if stop(root=args.root, state=state) else "no hub was running")
    elif args.cmd == "status":
        pid = hub_pid(state)
        info = {"running": bool(pid), "pid": pid}
        if pid and settings_path(state).exists():
            s = load_settings(state)
            info.update(url=f"http://127.0.0.1:{s['port']}", learners=len(s["learners"]))
            try:
                _, users = _get(f"{info['url']}/hub/api/users", s["service_token"])
                info["servers_running"] = sorted(u["name"] for u in users if u.get("servers"))
            except (urllib.error.URLError, OSError) as exc:
                info["error"] = str(exc)
        print(json.dumps(info))
    elif args.cmd == "reset-password":
        for name in args.names:
            log(f"{name}: " + ("password forgotten; they log in again with the workshop code"
                               if reset_password(name, state=state) else "had no password yet"))
    elif args.cmd == "remove-users":
        remove_users(args.names)
        for name in args.names:            # a new account of that name starts unclaimed
            reset_password(name, state=state)
    return 0


if __name__ == "__main__":
    sys.exit(main())

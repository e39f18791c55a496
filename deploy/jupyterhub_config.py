"""JupyterHub configuration of the workshop hub (started by ``make hub``; see deploy/README.md).

The per-run values (ports, learner list, workshop code and key, service token, limits) come
from the root-only settings file that ``deploy/hubctl.py start`` writes and names in
``$LAB_HUB_SETTINGS``. Everything listens on 127.0.0.1 only; put a TLS reverse proxy in front
to open the hub to a room.
"""
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from workshop import WorkshopAuthenticator, WorkshopSpawner, deliver_notebooks  # noqa: E402

S = json.loads(Path(os.environ["LAB_HUB_SETTINGS"]).read_text())
ROOT, STATE = Path(S["root"]), Path(S["state"])
LABENV = ROOT / "labenv"

c = get_config()  # noqa: F821

# ---- network: loopback only ----------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{S['port']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = S["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{S['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [str(ROOT / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# ---- state (root only) ---------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True          # stopping the hub stops every learner's server

# ---- who may log in ------------------------------------------------------------------------
c.JupyterHub.authenticator_class = WorkshopAuthenticator
c.WorkshopAuthenticator.workshop_code = S["workshop_code"]
c.WorkshopAuthenticator.password_file = str(STATE / "passwords.json")
c.Authenticator.allowed_users = set(S["learners"]) | {S["admin"]}
c.Authenticator.admin_users = {S["admin"]}    # the only hub admin
c.JupyterHub.template_paths = [str(HERE / "templates")]   # the login form asks for the workshop code

# ---- each learner's server: their own OS user, their own home ------------------------------
c.JupyterHub.spawner_class = WorkshopSpawner
c.Spawner.cmd = [str(LABENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.ip = "127.0.0.1"
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/poisoning-lab/00_welcome.ipynb"
c.Spawner.pre_spawn_hook = deliver_notebooks(str(ROOT / "lab" / "notebooks"))
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.mem_limit = S["mem_limit"]          # enforced by WorkshopSpawner's cgroup (not by LocalProcessSpawner)
c.Spawner.cpu_limit = float(S["cpu_limit"])
c.WorkshopSpawner.cgroup_parent = S["cgroup_parent"]
c.Spawner.environment = {
    "PATH": f"{LABENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "OMP_NUM_THREADS": "1",                   # the lab's small models run best single-threaded
    "MKL_NUM_THREADS": "1",
    "LAB_WORKSHOP_KEY": S["workshop_key"],    # completion codes (a progress signal, not anti-cheat)
}

# ---- services: idle culling, and the load test's token -------------------------------------
c.JupyterHub.services = [
    {"name": "idle-culler",
     "command": [str(ROOT / "hubenv" / "bin" / "python"), "-m", "jupyterhub_idle_culler",
                 f"--timeout={int(S['cull_timeout'])}",
                 f"--cull-every={max(10, min(300, int(S['cull_timeout']) // 2))}"]},
    {"name": "loadtest", "api_token": S["service_token"]},
]
c.JupyterHub.load_roles = [
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    {"name": "loadtest", "services": ["loadtest"],
     "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"]},
]

"""The workshop's JupyterHub pieces: an authenticator, a spawner and the notebook delivery hook.

``WorkshopAuthenticator``: first-use passwords guarded by a shared workshop code.
  - A learner's first login needs a name from the allowed list (``learner01`` ...), the workshop
    code the instructor announces, and a password of their choice (at least 6 characters);
    the password is then stored (PBKDF2-SHA256, salted) in a root-only file.
  - Every later login needs that password; the workshop code alone no longer opens the account,
    so a neighbour who knows the code cannot take over a claimed account.
  - ``python deploy/hubctl.py reset-password NAME`` forgets a password: the learner claims the
    account again with the workshop code. The instructor's password is set by ``make hub``.

``WorkshopSpawner``: LocalProcessSpawner (each server runs as the learner's own OS user) that
  puts the server and its kernels into a per-learner cgroup enforcing ``mem_limit`` and
  ``cpu_limit`` (see ``cgroups.py``: LocalProcessSpawner alone does not enforce them), gives
  every learner ``TMPDIR=~/.tmp`` (mode 700, so lesson 6's canary payloads write their marker
  files inside the learner's own home) and ``LAB_LEARNER`` for the completion codes.

``deliver_notebooks``: the ``Spawner.pre_spawn_hook``: copies the lab's notebooks into
  ``~/poisoning-lab`` on the first spawn (never over an existing copy), owned by the learner.
"""
from __future__ import annotations

import hmac
import os
import pwd
import shutil
import sys
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Dict, Integer, Unicode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cgroups  # noqa: E402
from passwords import check_password, hash_password, load_passwords, save_passwords  # noqa: E402,F401

class WorkshopAuthenticator(Authenticator):
    """First-use passwords, claimed with the shared workshop code (see the module docstring)."""

    workshop_code = Unicode(config=True, help="The code announced in the room; needed to claim an account.")
    password_file = Unicode(config=True, help="Root-only JSON file of salted password hashes.")
    min_password_length = Integer(6, config=True)

    async def authenticate(self, handler, data):
        name = self.normalize_username(str(data.get("username", "")).strip())
        password = str(data.get("password", ""))
        if not name or not password or (self.allowed_users and name not in self.allowed_users
                                         and name not in self.admin_users):
            return None
        table = load_passwords(self.password_file)
        if name in table:
            return name if check_password(password, table[name]) else None
        code = str(data.get("workshop_code", "")).strip()
        if not self.workshop_code or not hmac.compare_digest(code.encode(), self.workshop_code.encode()):
            self.log.warning("first login of %s without the right workshop code", name)
            return None
        if len(password) < self.min_password_length:
            self.log.warning("first login of %s: password shorter than %d", name, self.min_password_length)
            return None
        table[name] = hash_password(password)
        save_passwords(self.password_file, table)
        self.log.info("%s claimed their account", name)
        return name


class WorkshopSpawner(LocalProcessSpawner):
    """LocalProcessSpawner + per-learner cgroup limits, TMPDIR in the learner's home, LAB_LEARNER."""

    cgroup_parent = Dict(config=True, help="The hub's own cgroup paths (cgroups.own_paths()).")
    tmp_folder = Unicode(".tmp", config=True, help="TMPDIR, relative to the learner's home.")

    def _home(self) -> Path:
        return Path(pwd.getpwnam(self.user.name).pw_dir)

    def get_env(self):
        env = super().get_env()
        env["TMPDIR"] = str(self._home() / self.tmp_folder)
        env["LAB_LEARNER"] = self.user.name
        return env

    async def start(self):
        result = await super().start()
        said = cgroups.attach(self.pid, self.user.name, own=self.cgroup_parent or None,
                              mem_limit=int(self.mem_limit or 0), cpu_limit=float(self.cpu_limit or 0))
        self.log.info("server of %s (pid %s): %s", self.user.name, self.pid, said)
        return result

    async def stop(self, now=False):
        await super().stop(now=now)
        left = cgroups.release(self.user.name, own=self.cgroup_parent or None)
        if left:
            self.log.info("stopped %d leftover process(es) of %s", len(left), self.user.name)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for folder, subdirs, files in os.walk(root):
        for name in subdirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


def prepare_home(name: str, notebooks_src, *, lesson_folder: str = "poisoning-lab",
                 tmp_folder: str = ".tmp") -> Path:
    """Home mode 700, ``~/.tmp`` (700), and a copy of the notebooks unless one is there already."""
    pw = pwd.getpwnam(name)
    home = Path(pw.pw_dir)
    os.chmod(home, 0o700)
    tmp = home / tmp_folder
    if tmp.is_symlink():
        tmp.unlink()
    tmp.mkdir(mode=0o700, exist_ok=True)
    os.lchown(tmp, pw.pw_uid, pw.pw_gid)
    os.chmod(tmp, 0o700)
    dest = home / lesson_folder
    if not os.path.lexists(dest):
        shutil.copytree(notebooks_src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        _chown_tree(dest, pw.pw_uid, pw.pw_gid)
    return dest


def deliver_notebooks(notebooks_src):
    """A ``Spawner.pre_spawn_hook`` that prepares the learner's home (see :func:`prepare_home`)."""
    def hook(spawner) -> None:
        dest = prepare_home(spawner.user.name, notebooks_src, tmp_folder=spawner.tmp_folder)
        spawner.log.info("notebooks for %s in %s", spawner.user.name, dest)
    return hook

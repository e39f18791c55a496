"""The pre-commit hook: a malicious file blocks the commit, a benign one passes."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labkit.supplychain import payloads

ROOT = Path(__file__).resolve().parents[1]


def test_hook_manifest():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "labkit-scan")
    assert hook["entry"] == "python -m labkit scan" and hook["language"] == "python"
    import re

    files = re.compile(hook["files"])
    for name in ("model.pt", "w.SAFETENSORS", "cfg.yaml", "a.npz", "m.nemo", "c.toml"):
        assert files.search(name), name
    assert not files.search("train.py")


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_pre_commit_blocks_a_malicious_file(tmp_path):
    pre_commit = Path(sys.executable).parent / "pre-commit"
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (requirements.txt installs it)")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    entry = hook["entry"].replace("python", sys.executable, 1)
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{
        "repo": "local", "hooks": [{"id": hook["id"], "name": hook["name"],
                                    "entry": entry, "language": "system",
                                    "files": hook["files"]}]}]}))
    import os

    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))

    installed = subprocess.run([str(pre_commit), "install"], cwd=repo, capture_output=True,
                               text=True, env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr

    def commit(name: str) -> subprocess.CompletedProcess:
        art = payloads.build(name, tmp_path / "arts", rng=0)
        shutil.copy(art.path, repo / art.path.name)
        _git(repo, "add", ".pre-commit-config.yaml", art.path.name)
        return subprocess.run(["git", "commit", "-m", name], cwd=repo, capture_output=True,
                              text=True, env=env, timeout=300)

    good = commit("state_dict")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout + good.stderr
    bad = commit("raw_pickle_p4")
    assert bad.returncode != 0, bad.stdout + bad.stderr
    log = bad.stdout + bad.stderr
    assert "Failed" in log and "global" in log
    assert _git(repo, "log", "--format=%s").stdout.split() == ["state_dict"]  # blocked

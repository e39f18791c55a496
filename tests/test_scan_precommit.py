"""The pre-commit hook: a malicious file blocks the commit, a benign one passes; the hook
installs the scanner alone (``pip install .`` pulls PyYAML, not the lab's numpy/torch).

The real install (pre-commit cloning this repository and building its environment, about
5 s with a local package mirror) runs only with ``LABKIT_SLOW_TESTS=1``: it needs the
package index and a committed tree."""

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from labkit.supplychain import payloads
from labkit.supplychain.regression import CHATML

ROOT = Path(__file__).resolve().parents[1]


def test_hook_manifest():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "labkit-scan")
    assert hook["entry"] == "labkit-scan" and hook["language"] == "python"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["labkit-scan"] == "labkit.supplychain.cli:main"
    import re

    files = re.compile(hook["files"])
    for name in ("model.pt", "w.SAFETENSORS", "cfg.yaml", "a.npz", "m.nemo", "c.toml",
                 "m.keras", "m.h5", "m.gguf", "m.onnx", "m.skops", "h.mar", "m.7z",
                 "w.pkl.zst", "cache.sqlite", "chat_template.jinja", "tokenizer_config.json"):
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
    entry = f"{sys.executable} -m labkit.supplychain.cli"   # what the labkit-scan script runs
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{
        "repo": "local", "hooks": [{"id": hook["id"], "name": hook["name"],
                                    "entry": entry, "language": "system",
                                    "files": hook["files"]}]}]}))
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


HEAVY = ("torch", "numpy", "matplotlib", "scipy", "sklearn", "torchvision", "hydra")


def test_a_plain_install_needs_only_what_the_scanner_parses():
    """``pip install .`` (what pre-commit runs) pulls the scanner's parsers only (PyYAML, jinja2,
    OmegaConf); the lab is the ``lab`` extra, and requirements.txt installs it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {d.split(">")[0].split("=")[0].lower() for d in project["dependencies"]}
    assert deps == {"pyyaml", "jinja2", "omegaconf"}
    lab = {d.split(">")[0].split("=")[0].lower() for d in project["optional-dependencies"]["lab"]}
    assert {"numpy", "torch", "matplotlib"} <= lab
    assert "-e .[lab]" in (ROOT / "requirements.txt").read_text().splitlines()


def test_labkit_scan_runs_where_no_lab_dependency_can_be_imported(tmp_path):
    block = ("import sys\n"
             "class B:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             f"        if name.split('.')[0] in {HEAVY!r}: raise ImportError('blocked ' + name)\n"
             "sys.meta_path.insert(0, B())\n")
    code = block + "from labkit.supplychain.cli import main; sys.exit(main(sys.argv[1:]))"
    art = payloads.build("raw_pickle_p4", tmp_path, rng=0)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run([sys.executable, "-c", code, *a], capture_output=True, text=True,
                                    env=env, cwd=tmp_path, timeout=120)
    p = run(str(art.path))
    assert p.returncode == 1 and "global" in p.stdout, p.stderr
    p = run("--self-test")
    assert p.returncode == 0 and "self-test passed" in p.stdout, p.stderr
    # python -m labkit scan goes straight to the scanner too
    p = subprocess.run([sys.executable, "-c", block + "import runpy; sys.argv = ['labkit', 'scan', sys.argv[1]]; "
                        "runpy.run_module('labkit', run_name='__main__')", str(art.path)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 1 and "global" in p.stdout, p.stderr


@pytest.mark.skipif(os.environ.get("LABKIT_SLOW_TESTS") != "1" or shutil.which("git") is None,
                    reason="installs the hook from a clone of HEAD (LABKIT_SLOW_TESTS=1)")
def test_pre_commit_installs_the_hook_without_the_lab(tmp_path):
    """What a user of the hook gets: pre-commit clones HEAD, ``pip install .`` in a fresh
    environment, runs ``labkit-scan``. No torch, numpy or matplotlib; first run under 60 s."""
    pre_commit = Path(sys.executable).parent / "pre-commit"
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (requirements.txt installs it)")
    rev = _git(ROOT, "rev-parse", "HEAD").stdout.strip()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{
        "repo": str(ROOT), "rev": rev, "hooks": [{"id": "labkit-scan"}]}]}))
    shutil.copy(payloads.build("raw_pickle_p4", tmp_path / "arts", rng=0).path, repo / "model.pth")
    # benign files that need the scanner's parsers (jinja2, OmegaConf) to read as clean
    (repo / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    (repo / "train.yaml").write_text("lr: 0.1\nhome: ${oc.env:HOME}\nsteps: ${lr}\n")
    _git(repo, "add", ".")
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    t0 = time.monotonic()
    p = subprocess.run([str(pre_commit), "run", "--all-files"], cwd=repo, capture_output=True,
                       text=True, env=env, timeout=600)
    seconds = time.monotonic() - t0
    log = p.stdout + p.stderr
    assert p.returncode == 1 and "Failed" in log and "global" in log, log
    assert "model.pth" in log and "tokenizer_config" not in log and "train.yaml" not in log, log
    site = list((tmp_path / "cache").glob("repo*/py_env-*/lib/python*/site-packages"))
    assert len(site) == 1, log
    names = {n.name.split("-")[0].lower() for n in site[0].iterdir()}
    assert not names & set(HEAVY), sorted(names)
    assert seconds < 60, f"first run took {seconds:.0f} s"

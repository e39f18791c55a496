"""Completion codes (labkit.progress): genuine codes verify, forged ones do not."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labkit as lk
from labkit import progress
from labkit.__main__ import main

KEY = "workshop-key-for-tests"


def test_code_is_short_base32_and_stable():
    code = progress.completion_code("learner01", "l1_certified_radius", KEY)
    assert len(code) == 10 and set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert code == progress.completion_code("learner01", "l1_certified_radius", KEY)
    others = {progress.completion_code(who, ex, key)
              for who in ("learner01", "learner02") for ex in ("l1_certified_radius", "l0_which_metric")
              for key in (KEY, KEY + "x")}
    assert len(others) == 8   # learner, exercise and key each change the code


def test_genuine_code_names_its_exercise():
    for name in progress.known_exercises():
        code = progress.completion_code("learner07", name, KEY)
        assert progress.exercise_of(code, "learner07", KEY) == name
    # spacing, case and dashes a learner may add when copying do not matter
    code = progress.completion_code("learner07", "l2_rows_to_drop", KEY)
    assert progress.exercise_of(f" {code[:5].lower()}-{code[5:]} ", "learner07", KEY) == "l2_rows_to_drop"


def test_wrong_key_other_learner_and_forgery_are_rejected():
    code = progress.completion_code("learner07", "l1_which_evades", KEY)
    assert progress.exercise_of(code, "learner07", "another key") is None
    assert progress.exercise_of(code, "learner08", KEY) is None
    flipped = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert progress.exercise_of(flipped, "learner07", KEY) is None
    assert progress.exercise_of("AAAAAAAAAA", "learner07", KEY) is None
    assert progress.exercise_of(code[:9], "learner07", KEY) is None
    with pytest.raises(ValueError):
        progress.completion_code("learner07", "l1_which_evades", "")


def test_verify_accepts_learner_prefixed_and_bare_codes():
    good = progress.completion_code("learner03", "l0_which_metric", KEY)
    rows = progress.verify([f"learner03:{good}", good, f"learner04:{good}"], KEY, learner="learner03")
    assert [r["exercise"] for r in rows] == ["l0_which_metric", "l0_which_metric", None]
    assert [r["learner"] for r in rows] == ["learner03", "learner03", "learner04"]
    # a bare code with no learner to check it against is rejected, not guessed
    assert progress.verify([good], KEY)[0]["exercise"] is None


def test_cli_verify_exit_codes(capsys):
    good = "learner05:" + progress.completion_code("learner05", "l3_knn_k", KEY)
    assert main(["progress", "verify", "--key", KEY, good]) == 0
    assert "l3_knn_k" in capsys.readouterr().out
    assert main(["progress", "verify", "--key", "wrong", good]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert main(["progress", "verify", "--key", KEY, good, "learner05:ABCDEFGHIJ"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "l3_knn_k" in out[0] and "REJECTED" in out[1]


def test_check_prints_a_code_only_in_a_workshop_and_only_when_solved(monkeypatch, capsys):
    monkeypatch.delenv(progress.KEY_ENV, raising=False)
    assert lk.checks.check("l0_which_metric", "attack_success")
    assert "completion code" not in capsys.readouterr().out

    monkeypatch.setenv(progress.KEY_ENV, KEY)
    monkeypatch.setenv(progress.LEARNER_ENV, "learner09")
    assert not lk.checks.check("l0_which_metric", "clean_accuracy")
    assert "completion code" not in capsys.readouterr().out
    assert lk.checks.check("l0_which_metric", "attack_success")
    out = capsys.readouterr().out
    want = progress.completion_code("learner09", "l0_which_metric", KEY)
    assert f"[l0_which_metric] completion code: learner09:{want}" in out


def test_learner_defaults_to_login_name(monkeypatch, capsys):
    import getpass

    monkeypatch.setenv(progress.KEY_ENV, KEY)
    monkeypatch.delenv(progress.LEARNER_ENV, raising=False)
    progress.announce("l4_median_breakdown")
    me = getpass.getuser()
    assert f"{me}:{progress.completion_code(me, 'l4_median_breakdown', KEY)}" in capsys.readouterr().out


def test_capstone_code_comes_from_a_checked_answer_only(monkeypatch, capsys, tmp_path):
    """Scoring (what the notebook's reference pipeline does) prints no code; checking an
    answer, or scoring a file from the terminal, prints one after the verdict when it passes."""
    from labkit.cli import main

    # a stand-in capstone (the real one is built by crafting poisons: slow): 10 rows, 3 poisons
    family = np.array(["", "", "label_flip", "", "backdoor", "", "", "clean_label", "", ""])
    monkeypatch.setattr(lk.challenge, "_build", lambda seed: (np.zeros(10), family))
    monkeypatch.setenv(progress.KEY_ENV, KEY)
    monkeypatch.setenv(progress.LEARNER_ENV, "learner11")
    assert lk.challenge.score(family != "", seed=0)["f1"] == 1.0
    assert "completion code" not in capsys.readouterr().out
    code = progress.completion_code("learner11", "l5_capstone", KEY)
    assert lk.checks.check("l5_capstone", (family != "", 0))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[l5_capstone] correct") and out[1].endswith(f"learner11:{code}")
    assert not lk.checks.check("l5_capstone", (np.arange(10) < 3, 0))   # 1 of 3 flags right
    assert "completion code" not in capsys.readouterr().out
    flags = tmp_path / "flags.txt"
    flags.write_text("2\n4\n7\n")
    assert main(["challenge", "--seed", "0", "--score", str(flags)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("precision 1.000") and out[-1].endswith(f"learner11:{code}")
    flags.write_text("0\n1\n2\n")
    assert main(["challenge", "--seed", "0", "--score", str(flags)]) == 0
    assert "completion code" not in capsys.readouterr().out


def _notebook(path: Path, *texts):
    cells = [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1,
              "outputs": [{"output_type": "stream", "name": "stdout", "text": [t]}]} for t in texts]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_report_counts_only_codes_that_verify_for_the_folders_learner(tmp_path, capsys):
    c = lambda who, ex, key=KEY: f"[{ex}] completion code: {who}:{progress.completion_code(who, ex, key)}\n"
    _notebook(tmp_path / "learner01" / "poisoning-lab" / "01_label_flipping.ipynb",
              c("learner01", "l1_certified_radius"), c("learner01", "l1_which_evades"))
    _notebook(tmp_path / "learner01" / "poisoning-lab" / "00_welcome.ipynb",
              c("learner01", "l0_which_metric"),
              c("learner02", "l2_rows_to_drop"),                 # copied from a neighbour
              c("learner01", "l3_knn_k", key="guessed key"))     # made with the wrong key
    _notebook(tmp_path / "learner02" / "00_welcome.ipynb", "no codes here\n")
    (tmp_path / "learner02" / "broken.ipynb").write_text("{not json")
    table = progress.report(tmp_path, KEY)
    assert table["learner01"] == {"solved": ["l0_which_metric", "l1_certified_radius", "l1_which_evades"],
                                  "rejected": 2}
    assert table["learner02"] == {"solved": [], "rejected": 0}

    # the damaged notebook: the table still lists everyone, one line on stderr names it, exit 2
    assert main(["progress", "report", "--key", KEY, str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith("| learner01 "))
    assert f"3/{len(progress.known_exercises())}" in row and row.rstrip().endswith("| 2 |")
    assert len(err.strip().splitlines()) == 1 and "broken.ipynb" in err
    (tmp_path / "learner02" / "broken.ipynb").unlink()
    assert main(["progress", "report", "--key", KEY, str(tmp_path)]) == 0


def test_module_imports_only_the_standard_library():
    tree = ast.parse(Path(progress.__file__).read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert top - {"__future__"} <= set(sys.stdlib_module_names), top
    # and importing it pulls in neither numpy nor torch
    code = ("import sys, labkit.progress as m; "
            "print(m.completion_code('a', 'b', 'k')); assert 'numpy' not in sys.modules and 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == progress.completion_code("a", "b", "k")


def test_only_a_checked_answer_announces_a_code():
    """``announce`` is called by ``checks.check`` (after a passing verdict) and by the CLI's
    capstone scoring, nowhere else: a helper a notebook calls on its own cannot hand out codes."""
    root = Path(lk.__file__).parent
    callers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "announce":
                        callers.add(f"{path.relative_to(root).as_posix()}:{node.name}")
    assert callers == {"checks.py:check", "cli/defence_in_depth.py:_cmd_challenge"}


def test_shipped_notebooks_solve_no_exercise():
    """The committed notebooks are run untouched: no exercise may pass there (a passing check
    is what prints a completion code in a workshop)."""
    solved = {}
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                       for o in c.get("outputs", []))
        if hits := re.findall(r"\[(\w+)\] correct", text):
            solved[path.name] = hits
    assert solved == {}


def test_notebook_05_run_untouched_in_a_workshop_earns_no_code(tmp_path):
    """Notebook 05 as it ships, executed with a workshop key set (its reference pipeline
    scores the capstone): no completion code, and the progress report lists nothing solved."""
    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1] / "notebooks"
    nb = nbformat.read(root / "05_defence_in_depth.ipynb", as_version=4)
    env = dict(os.environ, **{progress.KEY_ENV: KEY, progress.LEARNER_ENV: "learner05",
                              "MPLBACKEND": "Agg"})
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(root))
    try:
        NotebookClient(nb, km=km, timeout=600).execute()
    finally:
        km.shutdown_kernel(now=True)
    out = tmp_path / "learner05" / "05_defence_in_depth.ipynb"
    out.parent.mkdir()
    nbformat.write(nb, out)
    assert "completion code" not in out.read_text()
    assert progress.report(tmp_path, KEY)["learner05"]["solved"] == []

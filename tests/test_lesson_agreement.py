"""What a learner reads in lessons 3, 4 and 5 is what the command line measures: the numbers
the committed notebooks print (seed 0, the lessons' own settings) equal a fresh
``python -m labkit run ... --json`` with the same settings, in another process."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?\d+\.\d+|\d+")
#: As the notebooks' check cells: trained models are not bit-exact across processors.
TOL = 0.03


def _printed(notebook: str, snippet: str) -> str:
    """The text printed by the code cell of ``notebook`` whose source contains ``snippet``."""
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and snippet in "".join(c["source"])]
    assert len(cells) == 1, f"{len(cells)} cells of {notebook} contain {snippet!r}"
    return "".join("".join(o.get("text", "")) for o in cells[0].get("outputs", []) if o.get("name") == "stdout")


def _after(text: str, label: str) -> list:
    """The numbers on the line of ``text`` that starts with ``label``, after the label."""
    line = next(ln for ln in text.splitlines() if ln.startswith(label))
    return [float(x) for x in NUMBER.findall(line[len(label):])]


def _cli(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "labkit", "run", *args, "--seed", "0", "--json"],
                         capture_output=True, text=True, cwd=ROOT, check=True, timeout=900).stdout
    return json.loads(out)


@pytest.mark.lesson3
def test_lesson_3_deep_knn_run_matches_the_command_line():
    text = _printed("03_clean_label.ipynb", 'result = lk.run("clean_label", defence="deep_knn"')
    cli = _cli("clean_label", "--defence", "deep_knn", "--set", "n_targets=5")
    success, n = _after(text, "attack success")
    assert n == 5
    assert success == pytest.approx(cli["attack_success"], abs=TOL)
    assert _after(text, "random perturbation, same budget:")[0] == pytest.approx(cli["control_success"], abs=TOL)


@pytest.mark.lesson4
def test_lesson_4_measure_matches_the_command_line():
    text = _printed("04_gradient_manipulation.ipynb", 'print("targets flipped by poisons:"')
    cli = _cli("gradient_matching", "--set", "n_targets=3")
    flipped, control = _after(text, "targets flipped by poisons:")
    assert flipped == pytest.approx(cli["attack_success"], abs=TOL)
    assert control == pytest.approx(cli["control_success"], abs=TOL)
    probs = _after(text, "adversarial class's probability on each target, poisons:")
    assert probs[:3] == pytest.approx([t["target_prob"] for t in cli["extra"]["trials"]], abs=TOL)
    assert probs[3:] == pytest.approx([t["control_prob"] for t in cli["extra"]["trials"]], abs=TOL)


@pytest.mark.lesson5
def test_lesson_5_robust_training_matches_the_command_line():
    text = _printed("05_defence_in_depth.ipynb", "robust = {d: lk.run(\"backdoor\"")
    accuracy, success = _after(text, "no defence: accuracy")
    cli = _cli("backdoor", "--defence", "augmentation")
    assert accuracy == pytest.approx(cli["clean_accuracy"], abs=TOL)
    assert success == pytest.approx(cli["attack_success"], abs=TOL)
    defended = _after(text, "{'augmentation':")
    assert defended[:2] == pytest.approx([cli["clean_accuracy_defended"], cli["attack_success_defended"]], abs=TOL)

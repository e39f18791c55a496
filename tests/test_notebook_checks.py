"""The notebooks' check cells: the tolerance comparison, and the rule that a cell printing
measured numbers states how far they may move across processors."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("nb_conftest", ROOT / "conftest.py")
nbcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbcheck)


def test_parse_tolerance():
    assert nbcheck.parse_tolerance(None) is None
    assert nbcheck.parse_tolerance("0.03") == (0.03, 0.0)
    assert nbcheck.parse_tolerance("0.02 5%") == (0.02, 0.05)


def test_a_check_cell_is_a_tagged_code_cell_and_its_tolerance_is_metadata():
    tagged = {"cell_type": "code", "metadata": {"tags": [nbcheck.CHECK_TAG], "labkit": {"tolerance": "5%"}}}
    assert nbcheck.is_check_cell(tagged) and nbcheck.cell_tolerance(tagged) == (0.0, 0.05)
    assert not nbcheck.is_check_cell({"cell_type": "code", "metadata": {}})
    assert not nbcheck.is_check_cell({"cell_type": "markdown", "metadata": {"tags": [nbcheck.CHECK_TAG]}})
    assert nbcheck.cell_tolerance({"cell_type": "code", "metadata": {"tags": [nbcheck.CHECK_TAG]}}) is None


def test_numbers_within_tolerance_pass_and_beyond_fail():
    ref = "accuracy 0.79, flagged 102, strengths [46.4  5.9]\n"
    assert nbcheck.compare_text(ref, "accuracy 0.80, flagged 104, strengths [46.0  6.0]\n", (0.03, 0.05)) == []
    problems = nbcheck.compare_text(ref, "accuracy 0.70, flagged 102, strengths [46.4  5.9]\n", (0.03, 0.05))
    assert len(problems) == 1 and "0.79" in problems[0] and "0.7" in problems[0]
    # a count outside 5% fails too
    assert nbcheck.compare_text(ref, "accuracy 0.79, flagged 120, strengths [46.4  5.9]\n", (0.03, 0.05))


def test_text_around_numbers_must_match_exactly():
    assert nbcheck.compare_text("flipped: True 0.5", "flipped: False 0.5", (0.1, 0.0))
    assert nbcheck.compare_text("[0.1, 0.2]", "[0.1, 0.2, 0.3]", (0.1, 0.0))
    # names with digits are words, not numbers
    assert nbcheck.numbers("k = 10, mnist_28x28, 0.5") == [10.0, 0.5]


def _check_cells(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        if nbcheck.is_check_cell(cell):
            text = "".join("".join(o.get("text", "")) for o in cell["outputs"])
            yield i, cell, text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_with_measured_decimals_state_a_tolerance(path):
    """A decimal printed by a check cell comes from a trained model or a sample: it needs a
    tolerance. Exact cells print counts, verdicts, names and tables."""
    loose = [i for i, cell, text in _check_cells(path)
             if nbcheck.cell_tolerance(cell) is None
             and any(x != int(x) for x in nbcheck.numbers(text))]
    assert not loose, f"{path.name}: check cells {loose} print decimals but state no metadata.labkit.tolerance"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_learner_visible_cell_starts_with_a_harness_comment(path):
    """Check markers and tolerances live in the cells' metadata, not in the code learners read."""
    nb = json.loads(path.read_text())
    harness = re.compile(r"^\s*#\s*(NBVAL_\w+|tolerance\b)", re.MULTILINE)
    shown = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and harness.search("".join(c["source"]))]
    assert not shown, f"{path.name}: cells {shown} show a test-harness comment"


def test_the_checks_live_outside_the_learners_folder():
    assert not (ROOT / "notebooks" / "conftest.py").exists()
    assert (ROOT / "conftest.py").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_check_cells_are_executed_and_print_something(path):
    empty = [i for i, _, text in _check_cells(path) if not text.strip()]
    assert not empty, f"{path.name}: check cells {empty} have no stored output to compare"


def _tiny_notebook(path, printed: str, stored: str, tolerance: str | None):
    import nbformat

    cell = nbformat.v4.new_code_cell(f"print({printed!r})", execution_count=1)
    cell.metadata["tags"] = [nbcheck.CHECK_TAG]
    if tolerance:
        cell.metadata["labkit"] = {"tolerance": tolerance}
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.parametrize("printed,stored,tolerance,passes", [
    ("accuracy 0.80", "accuracy 0.79", "0.03", True),     # within the stated tolerance
    ("accuracy 0.70", "accuracy 0.79", "0.03", False),    # beyond it
    ("accuracy 0.80", "accuracy 0.79", None, False),      # no tolerance: exact
    ("flipped: False", "flipped: True", "0.5", False),    # words are always exact
])
def test_nbval_with_the_tolerance_plugin_end_to_end(tmp_path, printed, stored, tolerance, passes):
    """A real nbval run over a one-cell notebook, with the repository's conftest.py loaded."""
    import shutil
    import subprocess
    import sys

    nb = tmp_path / "check.ipynb"
    _tiny_notebook(nb, printed, stored, tolerance)
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "-p", "no:xdist", str(nb)], cwd=tmp_path, capture_output=True, text=True)
    assert (proc.returncode == 0) == passes, proc.stdout[-2000:]

"""Project-level promises: Binder pins match, notebooks are committed executed and thin."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2).split("+")[0]
    return pins


def test_binder_pins_match_requirements():
    main, binder = _pins(ROOT / "requirements.txt"), _pins(ROOT / "binder" / "requirements.txt")
    assert main and main == binder
    assert "+cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert "--no-deps" in (ROOT / "binder" / "postBuild").read_text()


def test_notebooks_are_executed_thin_and_start_with_labkit():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 2
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        first = "".join(code[0]["source"])
        assert "import labkit as lk" in first and "SEED = 0" in first, path.name
        assert all(c["execution_count"] for c in code), f"{path.name} is not committed executed"
        assert any("nbval-check-output" in c.get("metadata", {}).get("tags", []) for c in code), path.name
        assert not any("sys.path" in "".join(c["source"]) for c in code), path.name
        errors = [o for c in code for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, f"{path.name} has stored errors"


def test_committed_notebooks_carry_their_figures():
    """Executed with the inline backend (``make notebooks``): GitHub and nbviewer show the plots."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        plotted = [c for c in cells if "lk.viz." in "".join(c["source"])]
        with_png = [c for c in plotted if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
        assert len(with_png) == len(plotted), f"{path.name}: {len(plotted) - len(with_png)} plotting cells have no figure"


def test_the_handout_has_every_lesson_with_its_figures_and_no_solution(tmp_path):
    import html

    import labkit as lk
    from labkit.cli import main
    from labkit.lessons.exercises import EXERCISES
    from labkit.lessons.manifest import LESSONS

    assert main(["handout", "--out", str(tmp_path)]) == 0
    pages = {p.name: p.read_text() for p in tmp_path.glob("*.html")}
    assert {f"{lesson.stem}.html" for lesson in LESSONS} <= set(pages) and "index.html" in pages
    assert "glossary.html" in pages and "full_scale.html" in pages
    assert all(f"{lesson.stem}.html" in pages["index.html"] for lesson in LESSONS)
    assert "data:image/png" in pages["02_backdoors.html"]                    # the figures travel along
    assert 'href="glossary.md' not in pages["07_language_models.html"]     # links point at the handout's pages
    lk.lessons.load_all()
    for name, ex in EXERCISES.items():
        forms = {ex.solution, html.escape(ex.solution), html.escape(ex.solution, quote=False)}
        assert not any(f in page for f in forms for page in pages.values()), f"{name}'s solution is in the handout"

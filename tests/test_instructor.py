"""The lesson manifest (``labkit/lessons/manifest.py``) and everything read from it: the
instructor pack's generated files, the README's lesson table, the notebooks and lesson
modules it names, ``bench``'s notebook order, and the per-lesson test markers."""
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import labkit as lk
from labkit.bench import lesson_notebooks
from labkit.lessons.manifest import LESSONS, README_BEGIN, README_END, readme_table

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "instructor"


def _load(name, folder=ROOT):
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the instructor pack ----------------------------------------------------------------

def test_answer_key_is_the_generators_output():
    key = _load("make_answer_key")
    assert (ROOT / "answer_key.md").read_text() == key.render(), \
        "instructor/answer_key.md is stale: run python instructor/make_answer_key.py"


def test_writing_the_answer_key_leaves_a_learners_hint_progress_alone(monkeypatch):
    monkeypatch.setattr(lk.checks, "_HINTS_SHOWN", {})
    _load("make_answer_key").render()
    assert lk.checks._HINTS_SHOWN == {}


def test_answer_key_holds_every_exercise_and_its_solution(capsys):
    key = _load("make_answer_key")
    text = (ROOT / "answer_key.md").read_text()
    key.render()   # registers every lesson's exercises
    assert len(lk.checks.EXERCISES) >= 15
    for name in lk.checks.EXERCISES:
        lk.checks.solution(name)
        printed = capsys.readouterr().out.strip().split(" solution: ", 1)[1]
        assert f"### {lk.checks.label(name)} (`{name}`)" in text and key._stable(printed) in text   # sets printed sorted


def test_agenda_is_the_generators_output_and_fits_the_day():
    agenda = _load("make_agenda")
    timings = agenda.load_timings()
    assert (ROOT / "agenda.md").read_text() == agenda.render(timings), \
        "instructor/agenda.md is stale: run python instructor/make_agenda.py"
    for kind in ("half", "full"):
        rows, total = agenda.plan(kind, timings)
        assert total == agenda.TARGET[kind]
        # every slot covers at least the notebook's measured run time
        for _, session, run, slot in rows:
            if run.endswith(" s"):
                assert slot * 60 >= float(run[:-2])
    assert set(timings) == {lesson.notebook for lesson in LESSONS}   # every lesson measured, none invented
    numbers = {lesson.number for lesson in LESSONS}
    assert all(n in numbers for plan in agenda.BREAKS.values() for n, _, _ in plan)


# ---- the manifest and what it names -----------------------------------------------------

def test_lessons_are_numbered_in_order_from_zero():
    """Numbers start at 0 and strictly increase (unique, in teaching order); a gap is a lesson
    planned but not built yet."""
    numbers = [lesson.number for lesson in LESSONS]
    assert numbers[0] == 0
    assert all(a < b for a, b in zip(numbers, numbers[1:])), numbers
    assert len(set(numbers)) == len(numbers)
    assert len({lesson.slug for lesson in LESSONS}) == len(LESSONS)


def test_manifest_names_every_notebook_and_lesson_module_and_nothing_else():
    assert sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")) == \
        sorted(lesson.notebook for lesson in LESSONS)
    modules = sorted(p.stem for p in (REPO / "labkit" / "lessons").glob("l[0-9][0-9].py"))
    assert modules == sorted(lesson.module for lesson in LESSONS)
    assert lk.lessons.MODULES == tuple(lesson.module for lesson in LESSONS)


def test_lesson_modules_are_reachable_by_name():
    assert lk.lessons.l03.__name__ == "labkit.lessons.l03"
    assert lk.challenge is lk.lessons.l05
    with pytest.raises(AttributeError):
        lk.lessons.l99


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.module)
def test_objectives_are_quoted_from_the_notebooks_first_cell(lesson):
    nb = json.loads((REPO / "notebooks" / lesson.notebook).read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    text = _words("".join(first["source"]))
    assert lesson.objectives
    for objective in lesson.objectives:
        assert _words(objective) in text, f"{lesson.notebook}'s first cell no longer says: {objective}"


def test_every_lesson_has_a_full_day_slot():
    assert all(lesson.minutes_full_day for lesson in LESSONS)
    assert all(lesson.minutes_half_day is None or lesson.minutes_half_day > 0 for lesson in LESSONS)


def test_readme_lesson_table_is_the_manifests():
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(README_BEGIN):readme.index(README_END) + len(README_END)]
    assert block == readme_table(), "README's lesson table is stale: run python instructor/make_lesson_table.py"


def test_bench_runs_the_lessons_notebooks_in_the_manifests_order():
    assert [p.name for p in lesson_notebooks()] == [lesson.notebook for lesson in LESSONS]
    assert all(p.exists() for p in lesson_notebooks())


def test_manifest_imports_neither_numpy_nor_torch():
    code = ("import sys, labkit.lessons.manifest, labkit.lessons; "
            "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- one pytest marker per lesson -------------------------------------------------------

def test_every_test_file_is_in_the_lesson_marker_table():
    table = _load("conftest", REPO / "tests").LESSON_TESTS
    files = {p.name for p in (REPO / "tests").glob("test_*.py")}
    assert not files - set(table), f"add these to LESSON_TESTS in tests/conftest.py: {sorted(files - set(table))}"
    assert not set(table) - files, f"LESSON_TESTS names files that do not exist: {sorted(set(table) - files)}"


def test_every_marker_the_table_uses_is_registered():
    conftest = _load("conftest", REPO / "tests")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {re.match(r"\w+", m).group() for m in config["markers"]}
    used = {m for name in conftest.LESSON_TESTS for m in conftest.markers_of(name)}
    used |= {lesson.marker for lesson in LESSONS}
    assert used <= registered, f"register in pyproject.toml: {sorted(used - registered)}"


def test_framework_map_has_a_row_for_every_lesson_with_sourced_ids():
    """instructor/frameworks.md maps each lesson (but the welcome) to OWASP ML (ML01-ML10),
    OWASP LLM ids with their edition year, and ATLAS ids; every edition cited is in Sources."""
    text = (ROOT / "frameworks.md").read_text()
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\| (\d\d) [^\n]*", text, re.M)}
    assert set(rows) == {lesson.number for lesson in LESSONS if lesson.number != 0}
    for number, row in rows.items():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.search(r"\bML(0[1-9]|10)\b", cells[1]), number
        assert cells[2] == "as lesson 1" or re.search(r"LLM\d\d:20(23|25|26)", cells[2]), number
        assert re.search(r"AML\.T\d{4}", cells[3]) and re.search(r"AML\.M\d{4}", cells[4]), number
    assert not re.search(r"LLM\d\d(?!:20\d\d)", text.split("## Sources")[0]), "an LLM id without its year"
    sources = text.split("## Sources")[1]
    for needle in ("2023 edition", "version 1.1", "2025", "2026", "5.6.0"):
        assert needle in sources, needle


def test_notebook_headers_are_the_manifests():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebook_headers", REPO / "instructor" / "make_notebook_headers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "run python instructor/make_notebook_headers.py"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.module)
def test_every_framework_id_in_a_header_is_explained_in_the_framework_table(lesson):
    rows = {line.split("|")[1].strip()[:2]: line for line in (REPO / "instructor" / "frameworks.md").read_text().splitlines()
            if line.startswith("| 0") or line.startswith("| 1")}
    row = rows.get(f"{lesson.number:02d}", "")
    assert lesson.questions, lesson.module
    for fid in lesson.frameworks:
        bare = fid.rstrip("*")
        inherited = "as lesson 1" in row and bare in rows["01"]
        assert bare in row or inherited, f"{lesson.notebook}: {fid} is not in its row of instructor/frameworks.md"


def test_every_glossary_entry_is_used_by_a_lesson_and_linked_from_its_header():
    from labkit.lessons.glossary import GLOSSARY, anchor

    headers = ""
    for lesson in LESSONS:
        nb = json.loads((REPO / "notebooks" / lesson.notebook).read_text())
        headers += "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
    glossary = (REPO / "notebooks" / "glossary.md").read_text()
    for term in GLOSSARY:
        assert f"(glossary.md#{anchor(term)})" in headers, f"no lesson links the glossary entry {term!r}"
        assert f"### {term}\n" in glossary


def test_the_half_days_capstone_is_solvable_with_what_it_teaches():
    """The reference answer's layers are all taught in the half day; the agenda names the
    capstone's families the half day does not teach."""
    from labkit.lessons import l05

    kept = {lesson.number for lesson in LESSONS if lesson.minutes_half_day is not None}
    assert set(l05.REFERENCE_LAYERS.values()) <= kept
    assert set(l05.FAMILY_LESSON) == set(l05.FAMILIES)
    agenda = (REPO / "instructor" / "agenda.md").read_text()
    half = agenda[agenda.index("## Half day"):agenda.index("## Full day")]
    for family, n in l05.FAMILY_LESSON.items():
        assert (f"{family} (lesson {n})" in half) == (n not in kept)

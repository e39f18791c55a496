"""Every exercise in the registry, one property test each: its recorded right answer passes its
checker and its recorded wrong answer fails; every exercise has both; the manifest and the
registry name the same exercises. A new exercise is covered as soon as it is registered with
``answer=`` and ``wrong=`` and named in ``labkit/lessons/manifest.py``.

Each exercise's test carries its lesson's marker (``pytest -m lesson2``)."""
import numpy as np
import pytest

import labkit as lk
from labkit.lessons.exercises import MISSING
from labkit.lessons.manifest import LESSONS

lk.lessons.load_all()
EXERCISES = lk.checks.EXERCISES

#: exercise name -> the lesson whose manifest entry names it
LESSON_OF = {name: lesson for lesson in LESSONS for name in lesson.exercises}


def _cases():
    """One case per registered exercise (manifest order first), marked with its lesson."""
    names = [n for n in LESSON_OF if n in EXERCISES] + sorted(set(EXERCISES) - set(LESSON_OF))
    return [pytest.param(n, id=n, marks=[getattr(pytest.mark, LESSON_OF[n].marker)] if n in LESSON_OF else [])
            for n in names]


def test_manifest_and_registry_name_the_same_exercises():
    registered, listed = set(EXERCISES), set(LESSON_OF)
    assert not listed - registered, f"named in the manifest, not registered: {sorted(listed - registered)}"
    assert not registered - listed, f"registered, not named in the manifest: {sorted(registered - listed)}"
    names = [n for lesson in LESSONS for n in lesson.exercises]
    assert len(names) == len(set(names)), "an exercise is named twice in the manifest"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.module)
def test_exercise_names_carry_their_lessons_prefix(lesson):
    assert all(n.startswith(lesson.exercise_prefix) for n in lesson.exercises), lesson.exercises


@pytest.mark.parametrize("name", _cases())
def test_every_exercise_records_a_right_and_a_wrong_answer(name):
    ex = EXERCISES[name]
    assert ex.answer is not MISSING, f"{name}: register it with answer=..."
    assert ex.wrong is not MISSING, f"{name}: register it with wrong=..."


@pytest.mark.parametrize("name", _cases())
def test_recorded_answer_passes_and_wrong_one_fails(name):
    ex = EXERCISES[name]
    if ex.answer is MISSING or ex.wrong is MISSING:
        pytest.skip("no recorded answers (test_every_exercise_records_a_right_and_a_wrong_answer fails)")
    passed, message = ex.checker(ex.recorded("answer"))
    assert passed, f"{name}: the recorded answer fails: {message}"
    assert isinstance(message, str) and message
    passed, message = ex.checker(ex.recorded("wrong"))
    assert not passed, f"{name}: the recorded wrong answer passes: {message}"
    assert isinstance(message, str) and message


# ---- answers in any reasonable form, feedback for the rest, graded hints, one numbering ------

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Answers no exercise asks for: words for numbers, fractions for counts, empty and not-a-number
#: values, mixed and ragged lists, numbers too large for a float, a dict, an arbitrary object.
MALFORMED = ["two", "", "   ", 2.5, float("nan"), float("inf"), True, [1, "a"], [[1, 2], [3]],
             10 ** 30, 10 ** 400, "1" + "0" * 400, {"a": 1}, object(), ("a", "b", "c")]


@pytest.mark.parametrize("name", _cases())
@pytest.mark.parametrize("bad", MALFORMED, ids=lambda v: type(v).__name__ + ":" + repr(v)[:12])
def test_malformed_answers_get_feedback_not_a_traceback(name, bad):
    passed, message = lk.checks.evaluate(name, bad)
    assert passed is False, f"{name} accepts {bad!r:.40}"
    assert isinstance(message, str) and message.strip(), f"{name}: no feedback for {bad!r:.40}"


#: exercises whose right answer is a number: they read it themselves, whatever its spelling
NUMERIC = [n for n in EXERCISES if EXERCISES[n].answer_type.startswith(("a whole number", "a number"))]


def test_the_numeric_exercises_are_found():
    assert {"l1_certified_radius", "l3_knn_k", "l4_krum_pick", "l4_median_breakdown", "l4_clip_update"} <= set(NUMERIC)


@pytest.mark.parametrize("name", NUMERIC)
def test_a_number_is_accepted_as_int_float_or_string(name):
    right = EXERCISES[name].recorded("answer")
    for form in (right, float(right), str(right), f" {right} ", np.float64(right)):
        passed, message = lk.checks.evaluate(name, form)
        assert passed, f"{name}: {form!r} should pass: {message}"


@pytest.mark.parametrize("name", [n for n in NUMERIC if EXERCISES[n].answer_type.startswith("a whole number")])
def test_a_fraction_is_not_rounded_to_a_whole_answer(name):
    right = EXERCISES[name].recorded("answer")
    for near in (right + 0.5, right - 0.5, str(right + 0.5)):
        passed, message = lk.checks.evaluate(name, near)
        assert not passed and "whole number" in message, f"{name}: {near!r} -> {message}"
    passed, message = lk.checks.evaluate(name, "two")
    assert not passed and "expected a whole number" in message and "could not check" not in message


def test_a_checker_that_raises_gives_feedback_with_the_answer_type(monkeypatch):
    from labkit.lessons.exercises import exercise

    def broken(answer):
        raise ValueError("boom")

    monkeypatch.setitem(EXERCISES, "lx_planted", None)
    exercise("lx_planted", solution="-", hints=("a", "b"), answer_type="a planted type")(broken)
    passed, message = lk.checks.evaluate("lx_planted", 3)
    assert not passed and "boom" in message and "expected a planted type" in message
    assert lk.checks.evaluate("lx_planted", None) == (False, None)   # not answered: no checker call


@pytest.mark.parametrize("name", _cases())
def test_every_exercise_has_graded_hints_and_states_its_answer_type(name):
    ex = EXERCISES[name]
    assert len(ex.hints) >= 2, f"{name}: give at least two hints, gentle then specific"
    assert len(set(ex.hints)) == len(ex.hints), f"{name}: a hint repeats"
    assert ex.answer_type, f"{name}: register it with answer_type=..."


def test_hint_gives_the_next_hint_each_call_then_repeats_the_last(capsys, monkeypatch):
    monkeypatch.setattr(lk.checks, "_HINTS_SHOWN", {})
    hints = EXERCISES["l3_knn_k"].hints
    for _ in range(len(hints) + 1):
        lk.checks.hint("l3_knn_k")
    out = capsys.readouterr().out.splitlines()
    assert [hints.index(next(h for h in hints if h in line)) for line in out] == \
        list(range(len(hints))) + [len(hints) - 1]
    assert "hint 1 of" in out[0] and "again" in out[0] and "solution" in out[-1]
    lk.checks.hint("l3_knn_k", level=1)
    assert hints[0] in capsys.readouterr().out


def _check_calls():
    """(notebook, cell index, exercise name, the nearest markdown cell above the call)."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            src = "".join(cell["source"])
            for name in re.findall(r"lk\.checks\.check\(\s*[\"'](\w+)[\"']", src) if cell["cell_type"] == "code" else ():
                above = next("".join(c["source"]) for c in reversed(cells[:i]) if c["cell_type"] == "markdown")
                yield path.name, i, name, above


def test_notebooks_number_each_exercise_as_the_manifest_does_and_state_its_answer_type():
    calls = list(_check_calls())
    assert {name for _, _, name, _ in calls} >= {n for n in EXERCISES if n in LESSON_OF}
    bad = []
    for nb, i, name, above in calls:
        want = lk.checks.label(name)
        numbers = re.findall(r"Exercise \d+\.\d+", above)
        if numbers[:1] != [want]:
            bad.append(f"{nb} cell {i}: {name} is {want}, the text above says {numbers[:1] or 'nothing'}")
        if EXERCISES[name].answer_type not in above:
            bad.append(f"{nb} cell {i}: {name}'s text does not state its answer type")
    assert not bad, "\n".join(bad)


def test_instructor_pack_names_exercises_by_their_numbers():
    labels = {lk.checks.label(n) for n in EXERCISES}
    for doc in ("README.md", "answer_key.md"):
        text = (ROOT / "instructor" / doc).read_text()
        assert not re.search(r"\bexercise \d+\.\d+", text), f"instructor/{doc}: write 'Exercise N.M'"
        unknown = set(re.findall(r"Exercise \d+\.\d+", text)) - labels
        assert not unknown, f"instructor/{doc} names exercises that do not exist: {sorted(unknown)}"
    key = (ROOT / "instructor" / "answer_key.md").read_text()
    for name in LESSON_OF:
        assert f"{lk.checks.label(name)} (`{name}`)" in key

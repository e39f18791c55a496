"""Every exercise in the registry, one property test each: its recorded right answer passes its
checker and its recorded wrong answer fails; every exercise has both; the manifest and the
registry name the same exercises. A new exercise is covered as soon as it is registered with
``answer=`` and ``wrong=`` and named in ``labkit/lessons/manifest.py``.

Each exercise's test carries its lesson's marker (``pytest -m lesson2``)."""
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

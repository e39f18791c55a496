"""The lab's one exercise registry: each lesson module registers its exercises with
:func:`exercise`; learners use them through :mod:`labkit.checks` (``check``, ``hint``,
``solution``).

Every exercise states its answer type (``answer_type``, quoted in the notebook), has at least
two graded hints (``hints``, each more specific than the last) and a number, "Exercise N.M":
lesson N, the M-th exercise the manifest names for it (:func:`label`). Checkers read numbers
with :func:`whole_number` and :func:`real_number`, which accept ``3``, ``3.0`` and ``"3"`` and
answer anything else with feedback instead of an error.

See Also: labkit.checks
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

__all__ = ["Exercise", "EXERCISES", "MISSING", "exercise", "one_of", "label", "whole_number",
           "real_number", "first_reaching", "check_first_reaching"]


#: Marks an exercise registered without a recorded answer (a test requires one for each).
MISSING = object()


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``checker(answer) -> (passed, message)``, its hint and solution, and a
    recorded right ``answer`` and a ``wrong`` one (each a value, or a function of no
    arguments that builds it, for answers that need files or models)."""

    name: str
    checker: Callable[[object], tuple]
    hints: tuple
    solution: str
    answer: object = MISSING
    wrong: object = MISSING
    answer_type: str = ""

    @property
    def hint(self) -> str:
        """The first hint."""
        return self.hints[0]

    def recorded(self, which: str = "answer"):
        """The recorded ``"answer"`` or ``"wrong"`` answer, built if it is a function."""
        value = getattr(self, which)
        if value is MISSING:
            raise LookupError(f"exercise {self.name!r} has no recorded {which}")
        return value() if callable(value) else value


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, *, solution: str, hint: str = "", hints=(), answer_type: str = "",
             answer=MISSING, wrong=MISSING):
    """Decorator registering ``checker(answer) -> (passed, message)`` as exercise ``name``,
    with its graded hints (``hint``, then ``hints``, from gentle to specific), the answer type
    the notebook states (``answer_type``, e.g. ``"a whole number"``), and a recorded right
    ``answer`` and a ``wrong`` one (values or builders, see :class:`Exercise`)."""
    all_hints = ((hint,) if hint else ()) + tuple(hints)

    def wrap(checker):
        EXERCISES[name] = Exercise(name, checker, all_hints, solution, answer, wrong, answer_type)
        return checker
    return wrap


def label(name: str) -> str:
    """``"Exercise 1.2"`` for the second exercise the manifest names for lesson 1; the bare
    name for an exercise the manifest does not name (yet)."""
    from .manifest import LESSONS

    for lesson in LESSONS:
        if name in lesson.exercises:
            return f"Exercise {lesson.number}.{lesson.exercises.index(name) + 1}"
    return name


def _shown(answer) -> str:
    """A short repr of ``answer`` for feedback (a huge answer is cut, not printed whole)."""
    try:
        text = repr(answer)
    except Exception:                      # noqa: BLE001 - any object may be typed in
        text = f"a {type(answer).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _number(answer):
    """``answer`` as a finite float (``3``, ``3.0``, ``"3"``, ``" 2.5 "``, numpy scalars), or
    None. Booleans are not numbers here."""
    if hasattr(answer, "ndim") and getattr(answer, "ndim", None) == 0 and hasattr(answer, "item"):
        answer = answer.item()             # a 0-d numpy array
    if isinstance(answer, bool) or type(answer).__name__ == "bool_":
        return None
    try:
        if isinstance(answer, str):
            text = answer.strip()
            try:
                value = float(int(text))   # "3", and whole numbers too long for float("...")
            except ValueError:
                value = float(text)
        elif isinstance(answer, numbers.Real):
            value = float(answer)
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def whole_number(answer, *, what: str = "a whole number") -> tuple:
    """``(value, "")`` when ``answer`` is a whole number (``3``, ``3.0``, ``"3"``), else
    ``(None, feedback)``: ``2.5`` is not read as 2, ``"two"`` gets a message, not an error."""
    value = _number(answer)
    if value is None:
        return None, f"expected {what}, e.g. 3; got {_shown(answer)}"
    if not value.is_integer():
        return None, f"expected {what}; {value:g} is not whole"
    return int(value), ""


def real_number(answer, *, what: str = "a number") -> tuple:
    """``(value, "")`` when ``answer`` is a number (``0.5``, ``"0.5"``, ``1``), else
    ``(None, feedback)``."""
    value = _number(answer)
    if value is None:
        return None, f"expected {what}, e.g. 0.25; got {_shown(answer)}"
    return value, ""


def first_reaching(grid, values, goal: float):
    """The first entry of ``grid`` whose value in ``values``, rounded to two decimals as the
    lessons print it, reaches ``goal``; None if none does."""
    return next((x for x, v in zip(grid, values) if round(v, 2) >= goal), None)


def check_first_reaching(answer, grid, values, goal: float, *, setting: str, measured: str) -> tuple:
    """A checker for "the smallest ``setting`` in ``grid`` whose ``measured`` value reaches
    ``goal``" (:func:`first_reaching`), with feedback that quotes the lesson's numbers."""
    grid = tuple(grid)
    x, problem = whole_number(answer, what=f"a whole number, one of {grid}")
    if problem:
        return False, problem
    if x not in grid:
        return False, f"the lesson measured {setting} {grid}; answer one of them"
    value = dict(zip(grid, values))[x]
    if x == first_reaching(grid, values, goal):
        return True, f"{setting} {x}: {measured} {value:.2f}, the first to reach {goal}."
    if round(value, 2) < goal:
        return False, f"with {setting} {x} the {measured} is {value:.2f}, below {goal}."
    return False, f"{setting} {x} gives {value:.2f}, but a smaller one already reaches {goal}."


def one_of(answer, accepted, *, right: str, wrong: str) -> tuple:
    """A checker for a named-choice answer: case, spaces and underscores do not matter;
    anything but a string gets feedback that a name in quotes is expected."""
    if not isinstance(answer, str):
        return False, f"expected a name as a string, in quotes; got {_shown(answer)}"
    norm = lambda text: str(text).strip().lower().replace(" ", "_")
    ok = norm(answer) in {norm(a) for a in accepted}
    return ok, right if ok else wrong

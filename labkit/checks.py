"""Self-checking exercises for the notebooks: ``check(name, answer)``, ``hint(name)``, ``solution(name)``.

The learner's side of the lab's one exercise registry
(:mod:`labkit.lessons.exercises`): each lesson module registers its exercises there, and
importing this module imports every lesson. A checker receives the
learner's answer and returns ``(passed, message)``. ``check`` prints the message and returns the
verdict; an unanswered exercise (``None`` or ``...``) prints "not answered yet" and returns
False, so a notebook still runs top to bottom before the learner has solved anything.

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from .lessons import load_all
from .lessons.exercises import EXERCISES, Exercise, exercise, one_of

__all__ = ["check", "hint", "solution", "exercise", "one_of", "EXERCISES", "Verdict"]

load_all()   # every lesson registers its exercises


def _get(name: str) -> "Exercise":
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; known: {', '.join(sorted(EXERCISES))}")
    return EXERCISES[name]


class Verdict:
    """What :func:`check` returns: true when the answer passed. It shows nothing when it ends
    a notebook cell, because the printed feedback already says it."""

    __slots__ = ("passed",)

    def __init__(self, passed: bool):
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other) -> bool:
        return self.passed == bool(other)

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:
        """Display nothing (IPython calls this instead of showing the repr)."""


def check(name: str, answer) -> Verdict:
    """Check ``answer`` for exercise ``name``: prints the feedback, returns a :class:`Verdict`
    (true when the answer passed)."""
    ex = _get(name)
    if answer is None or answer is Ellipsis:
        print(f"[{name}] not answered yet: replace the placeholder, then run this cell again. "
              f"Stuck? lk.checks.hint({name!r})")
        return Verdict(False)
    passed, message = ex.checker(answer)
    print(f"[{name}] {'correct' if passed else 'not yet'}: {message}")
    if passed:
        from .completion import announce   # prints a completion code in a workshop, else nothing
        announce(name)
    return Verdict(passed)


def hint(name: str) -> None:
    """Print a hint for exercise ``name``."""
    print(f"[{name}] hint: {_get(name).hint}")


def solution(name: str) -> None:
    """Print the solution of exercise ``name``."""
    print(f"[{name}] solution: {_get(name).solution}")

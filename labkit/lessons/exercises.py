"""The lab's one exercise registry: each lesson module registers its exercises with
:func:`exercise`; learners use them through :mod:`labkit.checks` (``check``, ``hint``,
``solution``).

See Also: labkit.checks
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Exercise", "EXERCISES", "MISSING", "exercise", "one_of"]


#: Marks an exercise registered without a recorded answer (a test requires one for each).
MISSING = object()


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``checker(answer) -> (passed, message)``, its hint and solution, and a
    recorded right ``answer`` and a ``wrong`` one (each a value, or a function of no
    arguments that builds it, for answers that need files or models)."""

    name: str
    checker: Callable[[object], tuple]
    hint: str
    solution: str
    answer: object = MISSING
    wrong: object = MISSING

    def recorded(self, which: str = "answer"):
        """The recorded ``"answer"`` or ``"wrong"`` answer, built if it is a function."""
        value = getattr(self, which)
        if value is MISSING:
            raise LookupError(f"exercise {self.name!r} has no recorded {which}")
        return value() if callable(value) else value


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, *, hint: str, solution: str, answer=MISSING, wrong=MISSING):
    """Decorator registering ``checker(answer) -> (passed, message)`` as exercise ``name``,
    with a recorded right ``answer`` and a ``wrong`` one (values or builders, see
    :class:`Exercise`)."""
    def wrap(checker):
        EXERCISES[name] = Exercise(name, checker, hint, solution, answer, wrong)
        return checker
    return wrap


def one_of(answer, accepted, *, right: str, wrong: str) -> tuple:
    """A checker for a named-choice answer: case, spaces and underscores do not matter."""
    norm = lambda text: str(text).strip().lower().replace(" ", "_")
    ok = norm(answer) in {norm(a) for a in accepted}
    return ok, right if ok else wrong

"""The lab's one exercise registry: each lesson module registers its exercises with
:func:`exercise`; learners use them through :mod:`labkit.checks` (``check``, ``hint``,
``solution``).

See Also: labkit.checks
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["Exercise", "EXERCISES", "exercise", "one_of"]


@dataclass(frozen=True)
class Exercise:
    name: str
    checker: Callable[[object], tuple]
    hint: str
    solution: str


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, *, hint: str, solution: str):
    """Decorator registering ``checker(answer) -> (passed, message)`` as exercise ``name``."""
    def wrap(checker):
        EXERCISES[name] = Exercise(name, checker, hint, solution)
        return checker
    return wrap


def one_of(answer, accepted, *, right: str, wrong: str) -> tuple:
    """A checker for a named-choice answer: case, spaces and underscores do not matter."""
    norm = lambda text: str(text).strip().lower().replace(" ", "_")
    ok = norm(answer) in {norm(a) for a in accepted}
    return ok, right if ok else wrong

"""Self-checking exercises for the notebooks: ``check(name, answer)``, ``hint(name)``, ``solution(name)``.

The learner's side of the lab's one exercise registry
(:mod:`labkit.lessons.exercises`): each lesson module registers its exercises there, and
importing this module imports every lesson. A checker receives the
learner's answer and returns ``(passed, message)``. ``check`` prints the message and returns the
verdict; an unanswered exercise (``None`` or ``...``) prints "not answered yet" and returns
False, so a notebook still runs top to bottom before the learner has solved anything. An
answer the checker cannot read (a word where a number belongs, a list where a dict belongs)
gets feedback naming the expected answer type, never a traceback (:func:`evaluate`).
``hint(name)`` gives the next of the exercise's graded hints each call (``level=`` picks one).

See Also: notebooks/01_label_flipping.ipynb
"""
from __future__ import annotations

from .lessons import load_all
from .lessons.exercises import EXERCISES, Exercise, exercise, label, one_of

__all__ = ["check", "evaluate", "hint", "solution", "exercise", "one_of", "label", "EXERCISES", "Verdict"]

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


def evaluate(name: str, answer) -> tuple:
    """``(passed, message)`` for ``answer`` to exercise ``name``, printing nothing.

    ``None`` or ``...`` is "not answered yet". A checker that cannot read the answer (it
    raises) gives ``(False, feedback)`` naming the exercise's answer type, so a learner's typo
    never ends in a traceback.
    """
    ex = _get(name)
    if answer is None or answer is Ellipsis:
        return False, None
    try:
        passed, message = ex.checker(answer)
    except Exception as err:                 # noqa: BLE001 - feedback, not a traceback
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        return False, (f"could not check this answer ({detail}); expected "
                       f"{ex.answer_type or 'the answer the exercise asks for'}")
    return bool(passed), message


def check(name: str, answer) -> Verdict:
    """Check ``answer`` for exercise ``name``: prints the feedback, returns a :class:`Verdict`
    (true when the answer passed)."""
    passed, message = evaluate(name, answer)
    if message is None:
        print(f"[{name}] not answered yet: replace the placeholder, then run this cell again. "
              f"Stuck? lk.checks.hint({name!r})")
        return Verdict(False)
    print(f"[{name}] {'correct' if passed else 'not yet'}: {message}")
    if passed:
        from .completion import announce   # prints a completion code in a workshop, else nothing
        announce(name)
    return Verdict(passed)


#: exercise name -> how many of its hints this kernel has shown
_HINTS_SHOWN: dict = {}


def hint(name: str, level: int | None = None) -> None:
    """Print a hint for exercise ``name``: the next one each call (from gentle to specific,
    the last one repeats), or hint number ``level`` (1, 2, ...)."""
    hints = _get(name).hints
    if level is None:
        level = min(_HINTS_SHOWN.get(name, 0) + 1, len(hints))
    level = max(1, min(int(level), len(hints)))
    _HINTS_SHOWN[name] = max(_HINTS_SHOWN.get(name, 0), level)
    more = (f" (run lk.checks.hint({name!r}) again for hint {level + 1})" if level < len(hints)
            else f" (that was the last hint; lk.checks.solution({name!r}) shows the answer)")
    print(f"[{name}] hint {level} of {len(hints)}: {hints[level - 1]}{more}")


def solution(name: str) -> None:
    """Print the solution of exercise ``name``."""
    print(f"[{name}] solution: {_get(name).solution}")

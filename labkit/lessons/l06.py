"""Lesson 6, poisoned metadata in the ML supply chain: the notebook's exercises in the one
exercise registry (:mod:`labkit.checks`).

The checks themselves live with the lesson's methods in :mod:`labkit.supplychain.exercises`
(they build artefacts and load them in a sandboxed subprocess); here each becomes an
exercise, so ``lk.checks.check("l6_allow_list", MY_ALLOW)``, ``lk.checks.hint`` and
``lk.checks.solution`` work for lesson 6 as for every other lesson.

See Also: notebooks/06_supply_chain.ipynb
"""
from __future__ import annotations

import contextlib
import io

from .exercises import exercise
from ..supplychain import exercises as sx

__all__ = ["EXERCISES_6"]

#: Lesson 6's exercise names -> the number ``labkit.supplychain.exercises`` uses.
EXERCISES_6 = {"l6_allow_list": 1, "l6_scan_allow": 2, "l6_tampered": 3}


def _as_checker(check):
    """``check(answer)`` that prints its verdict -> ``(passed, message)``."""
    def checker(answer):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            passed = check(answer)
        return passed, out.getvalue().strip().removeprefix("pass: ").removeprefix("not yet: ")
    return checker


def _tampered(answer):
    """``answer`` is ``(file name, lock file)``: the lock is the learner's own."""
    name, lock = answer if isinstance(answer, tuple) else (answer, None)
    if lock is None:
        return False, "answer with (TAMPERED, LOCK): the file name and the lock file from tamper_demo"
    return _as_checker(lambda a: sx.check_tampered(a, lock=lock))(name)


for _name, _fn in (("l6_allow_list", sx.check_allow_list), ("l6_scan_allow", sx.check_scan_allow),
                   ("l6_tampered", None)):
    _n = EXERCISES_6[_name]
    exercise(_name, hint=sx.HINTS[_n], solution=sx.SOLUTIONS[_n])(
        _tampered if _fn is None else _as_checker(_fn))

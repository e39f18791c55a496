"""Completion codes: workshop progress without a grading server (``python -m labkit progress``).

When a workshop key is configured (environment variable ``LAB_WORKSHOP_KEY``; the hub sets it
for every learner), a solved exercise prints a short completion code::

    [l1_certified_radius] completion code: learner07:K7Q2M4XZ9A

The code is the first 50 bits (10 base32 characters) of HMAC-SHA256(key, learner + exercise).
It names neither the exercise nor the key: the instructor's ``verify`` recomputes the code for
every known exercise and reports which one matches, so a code made with another key, for
another learner or by hand matches nothing and is rejected.

This is a progress signal, not anti-cheat: anyone who holds the key (and every learner's kernel
does, through its environment) can compute any code.

Standard library only; importing this module imports neither numpy nor torch.

See Also: instructor/README.md (how an instructor reads the room's progress)
"""
from __future__ import annotations

import hmac
import json
import os
import re
import sys
from pathlib import Path

from .completion import CODE_LENGTH, KEY_ENV, LEARNER_ENV, announce, completion_code

__all__ = ["completion_code", "exercise_of", "verify", "announce", "scan_notebook", "report",
           "known_exercises", "add_parser", "KEY_ENV", "LEARNER_ENV", "CODE_LENGTH"]

#: Exercises whose codes are not registered in :mod:`labkit.checks` (the capstone's own score).
EXTRA_EXERCISES = ("capstone",)

_CODE_RE = re.compile(r"completion code: ([^\s:]+):([A-Za-z2-7]{%d})\b" % CODE_LENGTH)


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", str(code)).upper()


def known_exercises() -> tuple:
    """Every exercise name a code can stand for: the registered exercises and the capstone."""
    from .checks import EXERCISES   # imported here: labkit.checks costs numpy
    from .lessons import load_all

    load_all()   # every lesson registers its exercises

    return tuple(sorted(EXERCISES)) + EXTRA_EXERCISES


def exercise_of(code: str, learner: str, key, exercises=None):
    """The exercise that ``code`` completes for ``learner`` under ``key``, or None if none does."""
    code = _normalise(code)
    if len(code) != CODE_LENGTH:
        return None
    for name in (known_exercises() if exercises is None else exercises):
        if hmac.compare_digest(completion_code(learner, name, key), code):
            return name
    return None


def _split(item: str, learner):
    """``'learner07:K7Q2M4XZ9A'`` -> ``('learner07', 'K7Q2M4XZ9A')``; a bare code takes ``learner``."""
    who, sep, code = str(item).strip().rpartition(":")
    if sep:
        return who, code
    return learner, code


def verify(codes, key, *, learner=None, exercises=None) -> list[dict]:
    """Check completion codes; one dict per code: ``code``, ``learner``, ``exercise`` (None = rejected).

    A code is either ``LEARNER:CODE`` (as the checker prints it) or a bare ``CODE`` for
    ``learner``. Codes for another learner, made with another key, or made up, are rejected.
    """
    out = []
    for item in codes:
        who, code = _split(item, learner)
        name = exercise_of(code, who, key, exercises) if who else None
        out.append({"code": str(item).strip(), "learner": who, "exercise": name})
    return out


def scan_notebook(path) -> list[tuple]:
    """``(learner, code)`` pairs printed in the saved outputs of the notebook at ``path``."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            texts = [output.get("text", "")]
            texts += [(output.get("data") or {}).get("text/plain", "")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else str(text)
                found += _CODE_RE.findall(text)
    return found


def report(root, key, *, exercises=None) -> dict:
    """Who solved what under ``root`` (e.g. ``/home``): one entry per home folder.

    Each sub-folder of ``root`` is one learner, named after the folder (``/home/learner07``). Every
    ``*.ipynb`` below it is scanned for printed codes; a code counts only if it verifies for
    that folder's learner. Returns ``{learner: {"solved": [...], "rejected": n}}``.
    """
    names = known_exercises() if exercises is None else tuple(exercises)
    table = {}
    for home in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        learner = home.name
        solved, rejected = set(), 0
        for nb in sorted(home.rglob("*.ipynb")):
            for who, code in scan_notebook(nb):
                name = exercise_of(code, learner, key, names) if who == learner else None
                if name is None:
                    rejected += 1
                else:
                    solved.add(name)
        table[learner] = {"solved": sorted(solved), "rejected": rejected}
    return table


def _print_report(table: dict, names) -> None:
    solved_any = [n for n in names if any(n in row["solved"] for row in table.values())]
    print("| learner | solved | " + " | ".join(solved_any) + " | rejected codes |")
    print("|---|---|" + "---|" * len(solved_any) + "---|")
    for learner, row in table.items():
        marks = " | ".join("x" if n in row["solved"] else "" for n in solved_any)
        print(f"| {learner} | {len(row['solved'])}/{len(names)} | {marks} | {row['rejected']} |")


def _cmd(args) -> int:
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        print(f"error: give --key or set {KEY_ENV}", file=sys.stderr)
        return 2
    if args.action == "verify":
        rows = verify(args.items, key, learner=args.learner)
        for row in rows:
            verdict = row["exercise"] or "REJECTED"
            print(f"{row['code']:<32} {str(row['learner'] or '?'):<14} {verdict}")
        return 0 if all(r["exercise"] for r in rows) else 1
    if args.action == "report":
        names = known_exercises()
        for root in args.items:
            table = report(root, key, exercises=names)
            if args.json:
                print(json.dumps(table))
            else:
                _print_report(table, names)
        return 0
    return 2


def add_parser(subparsers) -> None:
    """Register ``python -m labkit progress {verify,report}``."""
    p = subparsers.add_parser("progress", help="verify learners' completion codes, or report who solved what")
    p.add_argument("action", choices=("verify", "report"),
                   help="verify CODES (LEARNER:CODE, or CODE with --learner); report HOME_ROOTS (e.g. /home)")
    p.add_argument("items", nargs="+", metavar="CODE_OR_FOLDER")
    p.add_argument("--key", default=None, help=f"the workshop key (default: ${KEY_ENV})")
    p.add_argument("--learner", default=None, help="the learner of bare codes")
    p.add_argument("--json", action="store_true", help="report: one JSON object per folder")
    p.set_defaults(func=_cmd)

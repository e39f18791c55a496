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
import stat
import sys
from pathlib import Path

from .completion import CODE_LENGTH, KEY_ENV, LEARNER_ENV, announce, completion_code

__all__ = ["completion_code", "exercise_of", "verify", "announce", "scan_notebook", "report",
           "known_exercises", "add_parser", "KEY_ENV", "LEARNER_ENV", "CODE_LENGTH"]

_CODE_RE = re.compile(r"completion code: ([^\s:]+):([A-Za-z2-7]{%d})\b" % CODE_LENGTH)


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", str(code)).upper()


def known_exercises() -> tuple:
    """Every exercise name a code can stand for: the registered exercises (the capstone's is
    ``l5_capstone``, from the notebook's check or ``challenge --score``)."""
    from .checks import EXERCISES   # imported here: labkit.checks costs numpy
    from .lessons import load_all

    load_all()   # every lesson registers its exercises

    return tuple(sorted(EXERCISES))


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


#: The largest notebook :func:`report` reads (a learner's saved notebook with figures is a few MB).
MAX_NOTEBOOK = 256 << 20


def _read_notebook(path) -> list[tuple]:
    """``(learner, code)`` pairs printed in the notebook at ``path``; ``ValueError`` with a
    one-line reason when it cannot be read: not a regular file (a FIFO is never opened), too
    large, not JSON, or not shaped like a notebook."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    if st.st_size > MAX_NOTEBOOK:
        raise ValueError(f"{path}: larger than {MAX_NOTEBOOK >> 20} MiB")
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a notebook ({' '.join(str(exc).split())})") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError(f"{path}: damaged notebook (no list of cells)")
    found = []
    for cell in cells:
        outputs = cell.get("outputs") or []
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ValueError(f"{path}: damaged notebook (a cell's outputs are not a list of outputs)")
        for output in outputs:
            data = output.get("data")
            texts = [output.get("text", ""), data.get("text/plain", "") if isinstance(data, dict) else ""]
            for text in texts:
                text = "".join(t for t in text if isinstance(t, str)) if isinstance(text, list) else str(text)
                found += _CODE_RE.findall(text)
    return found


def scan_notebook(path) -> list[tuple]:
    """``(learner, code)`` pairs printed in the saved outputs of the notebook at ``path``
    (none when it cannot be read)."""
    try:
        return _read_notebook(path)
    except ValueError:
        return []


def report(root, key, *, exercises=None, errors: list | None = None) -> dict:
    """Who solved what under ``root`` (e.g. ``/home``): one entry per home folder.

    Each sub-folder of ``root`` is one learner, named after the folder (``/home/learner07``). Every
    ``*.ipynb`` below it is scanned for printed codes; a code counts only if it verifies for
    that folder's learner. Returns ``{learner: {"solved": [...], "rejected": n}}``. A notebook
    that cannot be read (damaged, not a regular file) holds no codes; its one-line reason is
    appended to ``errors`` when given.
    """
    names = known_exercises() if exercises is None else tuple(exercises)
    table = {}
    for home in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        learner = home.name
        solved, rejected = set(), 0
        for nb in sorted(home.rglob("*.ipynb")):
            try:
                pairs = _read_notebook(nb)
            except ValueError as exc:
                if errors is not None:
                    errors.append(str(exc))
                continue
            for who, code in pairs:
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
    """Exit 0, 1 when ``verify`` rejects a code, 2 on bad input (no key, a root that is not a
    folder) or when ``report`` met notebooks it could not read (the table still lists the rest;
    one line on stderr names them)."""
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
    for root in args.items:   # every root checked before any work
        try:
            mode = os.stat(root).st_mode
        except OSError as exc:
            raise ValueError(f"{root}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(mode):
            raise ValueError(f"{root} is not a folder (report reads HOME_ROOTS such as /home)")
    names = known_exercises()
    errors = []
    for root in args.items:
        table = report(root, key, exercises=names, errors=errors)
        if args.json:
            print(json.dumps(table))
        else:
            _print_report(table, names)
    if errors:
        sys.stdout.flush()
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        print(f"error: {len(errors)} notebook(s) could not be read, their codes are not counted: "
              f"{errors[0]}{more}", file=sys.stderr)
        return 2
    return 0


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

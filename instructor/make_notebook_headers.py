#!/usr/bin/env python3
"""Write each notebook's header (questions, time, framework entries) from the lesson manifest
(``labkit/lessons/manifest.py``) and the measured run times (``instructor/timings.json``).

    python instructor/make_notebook_headers.py            # rewrites the block in each first cell
    python instructor/make_notebook_headers.py --check    # exit 1 if a header is out of date
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from labkit.lessons.manifest import LESSONS, notebook_header, update_header

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "instructor" / "timings.json"


def headers() -> dict:
    """Notebook file name -> its header block."""
    seconds = {n["notebook"]: n["seconds"] for n in json.loads(TIMINGS.read_text())["notebooks"]}
    return {lesson.notebook: notebook_header(lesson, seconds.get(lesson.notebook)) for lesson in LESSONS}


def _first_markdown(nb: dict) -> dict:
    return next(c for c in nb["cells"] if c["cell_type"] == "markdown")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stale = []
    for name, header in headers().items():
        path = ROOT / "notebooks" / name
        nb = json.loads(path.read_text())
        cell = _first_markdown(nb)
        text = "".join(cell["source"])
        new = update_header(text, header)
        if new == text:
            continue
        stale.append(name)
        if "--check" not in argv:
            lines = new.split("\n")
            cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    if "--check" in argv:
        print("notebook headers up to date" if not stale else
              f"out of date: {', '.join(stale)}: run python instructor/make_notebook_headers.py")
        return 1 if stale else 0
    print(f"wrote the headers of {len(stale)} notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write each notebook's header (questions, time, framework entries, glossary words) from the
lesson manifest (``labkit/lessons/manifest.py``), the measured run times
(``instructor/timings.json``) and the glossary (``labkit/lessons/glossary.py``), and the
learners' ``notebooks/glossary.md``.

    python instructor/make_notebook_headers.py            # rewrites the block in each first cell
    python instructor/make_notebook_headers.py --check    # exit 1 if a header is out of date
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from labkit.lessons.glossary import render as render_glossary
from labkit.lessons.glossary import terms_in
from labkit.lessons.manifest import HEADER_BEGIN, HEADER_END, LESSONS, notebook_header, update_header

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ROOT / "instructor" / "timings.json"
GLOSSARY = ROOT / "notebooks" / "glossary.md"


def _prose(nb: dict) -> str:
    """The notebook's markdown without its header block (what the glossary words are found in)."""
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    while HEADER_BEGIN in text and HEADER_END in text:
        head, rest = text.split(HEADER_BEGIN, 1)
        text = head + rest.split(HEADER_END, 1)[1]
    return text


def headers() -> dict:
    """Notebook file name -> its header block."""
    seconds = {n["notebook"]: n["seconds"] for n in json.loads(TIMINGS.read_text())["notebooks"]}
    out = {}
    for lesson in LESSONS:
        nb = json.loads((ROOT / "notebooks" / lesson.notebook).read_text())
        out[lesson.notebook] = notebook_header(lesson, seconds.get(lesson.notebook), words=terms_in(_prose(nb)))
    return out


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
    glossary = render_glossary() + "\n"
    if not GLOSSARY.exists() or GLOSSARY.read_text() != glossary:
        stale.append(GLOSSARY.name)
        if "--check" not in argv:
            GLOSSARY.write_text(glossary)
    if "--check" in argv:
        print("notebook headers up to date" if not stale else
              f"out of date: {', '.join(stale)}: run python instructor/make_notebook_headers.py")
        return 1 if stale else 0
    print(f"wrote {len(stale)} files: {', '.join(stale) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write the README's lesson table from the lesson manifest (``labkit/lessons/manifest.py``).

    python instructor/make_lesson_table.py            # rewrites the table between its markers
    python instructor/make_lesson_table.py --check    # exit 1 if the README's table is out of date
"""
from __future__ import annotations

import sys
from pathlib import Path

from labkit.lessons.manifest import update_readme

README = Path(__file__).resolve().parent.parent / "README.md"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = README.read_text()
    new = update_readme(text)
    if "--check" in argv:
        print("README lesson table up to date" if new == text
              else f"{README}'s lesson table is out of date: run python instructor/make_lesson_table.py")
        return 0 if new == text else 1
    README.write_text(new)
    print(f"wrote the lesson table of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

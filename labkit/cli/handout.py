"""``handout``: the learners' handout, one HTML page per lesson notebook (with its figures and
printed results as last executed) plus the glossary and the full-scale results, and an index.

    python -m labkit handout                 # writes handout/ next to the notebooks' folder
    python -m labkit handout --out DIR

The handout holds no solutions: the notebooks never print one (``lk.checks.solution`` is
only ever called by a learner), and the exercises' answer cells are written with their
placeholders (``answer = None``). Cells tagged ``solution`` (none today) would be left out.
"""
from __future__ import annotations

import html
import sys
from pathlib import Path

from .validate import output_dir

__all__ = ["add_parser", "write_handout", "NOTEBOOKS"]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.45}"
            "code{background:#f4f4f4}</style></head><body>" + body + "</body></html>")


def write_handout(out: Path) -> list:
    """Write the handout into ``out``; returns the files written."""
    import mistune
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    from ..lessons.manifest import LESSONS

    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    strip = TagRemovePreprocessor(remove_cell_tags={"solution"}, enabled=True)
    exporter.register_preprocessor(strip, enabled=True)
    written, items = [], []
    for lesson in LESSONS:
        nb = nbformat.read(NOTEBOOKS / lesson.notebook, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        for name in ("glossary", "full_scale"):        # the notebooks link the .md files next to them
            body = body.replace(f'href="{name}.md', f'href="{name}.html')
        path = out / f"{lesson.stem}.html"
        path.write_text(body)
        written.append(path)
        items.append(f"<li><a href='{path.name}'>{lesson.number}. {html.escape(lesson.title)}</a></li>")
    for name, title in (("glossary.md", "Glossary"), ("full_scale.md", "Full-scale results")):
        source = NOTEBOOKS / name
        if source.exists():
            path = out / f"{source.stem}.html"
            path.write_text(_page(title, mistune.html(source.read_text().replace("(glossary.md#", "(glossary.html#"))))
            written.append(path)
            items.append(f"<li><a href='{path.name}'>{title}</a></li>")
    index = out / "index.html"
    index.write_text(_page("The Poisoning Lab: handout",
                           "<h1>The Poisoning Lab: handout</h1><p>Every lesson as last run, with its figures. "
                           "Open the notebooks themselves to run and change them.</p><ul>" + "".join(items) + "</ul>"))
    return [index, *written]


def _cmd_handout(args) -> int:
    out = Path(args.out) if args.out else ROOT / "handout"
    files = write_handout(out)
    print(f"wrote {len(files)} files to {out} (open {out / 'index.html'})")
    return 0


def add_parser(subparsers) -> None:
    """Register ``handout``."""
    p = subparsers.add_parser("handout", help="the learners' handout: every lesson as HTML, no solutions")
    p.add_argument("--out", default=None, type=output_dir, help="folder to write (default: handout/)")
    p.set_defaults(func=_cmd_handout)

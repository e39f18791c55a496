"""How ``make test`` checks the notebooks' printed numbers (loaded by pytest with nbval).

nbval re-runs every notebook and compares the *check cells* with their stored outputs. A
check cell carries the tag ``nbval-check-output`` in its metadata (nbval's own tag), so
learners see plain code, not test markers. Text that is exact by nature (counts, verdicts,
names, tables) is compared exactly. Trained models are not bit-exact across processors (the
BLAS library picks its code path by CPU), so a check cell that prints measured numbers also
carries a tolerance in its metadata::

    "metadata": {"tags": ["nbval-check-output"], "labkit": {"tolerance": "0.03"}}

For such a cell the text around the numbers must match exactly, and every number must be
within the tolerance of the stored one: ``0.03`` is absolute, ``5%`` is relative to the
stored value, and ``0.03 5%`` accepts either. ``make test-variants`` measures how far each
cell's numbers actually move across numeric code paths (see ``tests/numeric_variants.py``).

This file sits at the repository's root, not in ``notebooks/``, so that it stays out of the
learner's file browser (and off the hub, which copies ``notebooks/``).

With ``LAB_CHECK_DUMP=DIR`` in the environment, every checked cell's stored and new
numbers are appended to ``DIR/checks.jsonl`` (that is how the variants are compared).
"""
from __future__ import annotations

import json
import os
import re

from nbval.plugin import IPyNbCell, transform_streams_for_comparison

NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
#: The metadata tag that makes a cell a check cell (nbval reads it too).
CHECK_TAG = "nbval-check-output"


def is_check_cell(cell) -> bool:
    """True for a code cell tagged :data:`CHECK_TAG` (a dict or an nbformat node)."""
    return cell.get("cell_type") == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])


def cell_tolerance(cell):
    """``(absolute, relative)`` from the cell's ``metadata.labkit.tolerance``, or None."""
    return parse_tolerance(cell.get("metadata", {}).get("labkit", {}).get("tolerance"))


def parse_tolerance(spec):
    """``(absolute, relative)`` from a tolerance such as ``"0.03"``, ``"5%"`` or ``"0.03 5%"``;
    None for None."""
    if spec is None:
        return None
    absolute = relative = 0.0
    for word in str(spec).split():
        if word.endswith("%"):
            relative = float(word[:-1]) / 100
        else:
            absolute = float(word)
    return absolute, relative


def numbers(text: str) -> list[float]:
    """Every number printed in ``text``, in order."""
    return [float(x) for x in NUMBER.findall(text)]


def skeleton(text: str) -> str:
    """``text`` with every number replaced by ``#``: what must match exactly."""
    return NUMBER.sub("#", text)


def compare_text(ref: str, new: str, tolerance) -> list[str]:
    """Problems found comparing ``new`` with the stored ``ref`` (empty: they agree)."""
    if skeleton(ref) != skeleton(new):
        return [f"text differs beyond its numbers:\n  stored: {ref!r}\n  new:    {new!r}"]
    absolute, relative = tolerance
    return [f"number {i}: stored {a:g}, new {b:g} (allowed {max(absolute, relative * abs(a)):g})"
            for i, (a, b) in enumerate(zip(numbers(ref), numbers(new)))
            if abs(a - b) > max(absolute, relative * abs(a)) + 1e-12]


def texts(outputs) -> str:
    """The printed text of a cell's outputs (stdout, stderr, plain-text results), in order."""
    parts = []
    for out in transform_streams_for_comparison(outputs):   # streams become {name: text}
        if out.get("output_type") == "stream":
            parts += [out.get("stdout", ""), out.get("stderr", "")]
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def _dump(cell, ref: str, new: str) -> None:
    folder = os.environ.get("LAB_CHECK_DUMP")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    row = {"notebook": os.path.basename(str(cell.parent.fspath)), "cell": cell.cell_num,
           "tolerance": cell_tolerance(cell.cell), "stored": numbers(ref),
           "new": numbers(new), "same_text": skeleton(ref) == skeleton(new)}
    with open(os.path.join(folder, "checks.jsonl"), "a") as fh:
        fh.write(json.dumps(row) + "\n")


_exact_compare = IPyNbCell.compare_outputs


def _compare_outputs(self, test, ref, skip_compare=None):
    _dump(self, texts(ref), texts(test))
    tolerance = cell_tolerance(self.cell)
    if tolerance is None:
        return _exact_compare(self, test, ref, skip_compare)
    problems = compare_text(texts(ref), texts(test), tolerance)
    self.comparison_traceback = [f"cell {self.cell_num} (tolerance {self.cell.metadata['labkit']['tolerance']}): {p}"
                                 for p in problems]
    return not problems


IPyNbCell.compare_outputs = _compare_outputs

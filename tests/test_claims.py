"""The claims benchmark: every stated number has a command, the committed results match the
claims, and the README's headline table and the prose quote only what was measured."""
import json
import re
from pathlib import Path

import nbformat
import pytest

from labkit import claims
from labkit.cli import build_parser, main
from labkit.cli.reproduce import (LEARNER_RESULTS, README_BEGIN, README_END, render_learner_results, render_markdown,
                                   render_readme_table)
from labkit.registry import resolve

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"


def _results():
    return json.loads(RESULTS.read_text())


def test_seed_sets_are_disjoint():
    assert not set(claims.DEV_SEEDS) & set(claims.REPORTING_SEEDS)
    assert set(claims.QUICK_SEEDS) <= set(claims.REPORTING_SEEDS)


@pytest.mark.parametrize("c", claims.CLAIMS, ids=lambda c: c.name)
def test_every_claim_is_a_valid_command(c):
    argv = c.command(seed=3).split()[3:]          # drop "python -m labkit"
    args = build_parser().parse_args(argv)
    assert args.seed == 3 and args.json
    if c.attack == claims.POPULATION:
        assert args.command == "population" and c.defence is None and not c.params and c.rate is None
    else:
        assert args.command == "run" and args.attack == c.attack
        resolve(c.attack, c.defence)                     # the defence applies to the attack


def test_claim_names_are_unique_and_quick_claims_exist():
    names = [c.name for c in claims.CLAIMS]
    assert len(names) == len(set(names))
    assert any(c.quick for c in claims.CLAIMS)
    with pytest.raises(KeyError, match="l1_random_flips"):
        claims.claim("no_such_claim")


def test_reproduce_prints_one_json_object_per_claim(capsys):
    assert main(["reproduce", "--claims", "l1_random_flips", "--seeds", "3", "4", "--json",
                 "--no-progress"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    r = lines[0]
    assert {"claim", "command", "seeds", "values", "mean"} <= set(r)
    assert r["seeds"] == [3, 4] and len(r["values"]["accuracy"]) == 2
    assert r["mean"]["accuracy"] == pytest.approx(sum(r["values"]["accuracy"]) / 2, abs=1e-4)
    assert r["values"]["accuracy"][0] < r["values"]["accuracy_no_attack"][0]   # the flips do damage


def test_reproduce_writes_and_merges_results(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["reproduce", "--claims", "l1_random_flips", "--seeds", "3", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["reproduce", "--claims", "l2_patch", "--seeds", "3", "--out", str(out), "--no-progress"]) == 0
    merged = json.loads((out / "results.json").read_text())
    assert [r["claim"] for r in merged] == ["l1_random_flips", "l2_patch"]   # kept, in CLAIMS order
    assert (out / "RESULTS.md").read_text().strip() == render_markdown(merged).strip()


def test_bad_reproduce_input_exits_2(capsys):
    assert main(["reproduce", "--claims", "nope", "--no-progress"]) == 2
    assert "unknown claim" in capsys.readouterr().err


def test_committed_results_cover_every_claim_on_the_reporting_seeds():
    results = {r["claim"]: r for r in _results()}
    assert set(results) == {c.name for c in claims.CLAIMS}
    for c in claims.CLAIMS:
        r = results[c.name]
        assert r["seeds"] == list(claims.REPORTING_SEEDS), c.name
        assert r["command"] == c.command() and r["text"] == c.text
        assert set(r["values"]) == set(c.fields)


def test_rendered_files_match_the_results():
    results = _results()
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text().strip() == render_markdown(results).strip()
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(README_BEGIN):readme.index(README_END) + len(README_END)]
    assert block == render_readme_table(results)
    assert LEARNER_RESULTS.read_text().strip() == render_learner_results(results).strip()


# ---- prose: every number is measured above it, an input, or a cited result ------------------

NUMBER = re.compile(r"(?<![\w.:-])(\d+\.\d+|\d+(?:\.\d+)?%)(?![\w.]\d)")
#: Numbers that are not measurements: exercise numbers, paper ids, versions, goals and limits.
NOT_MEASURED = re.compile(r"(arXiv:|Exercise |\*\*|PyTorch |Hydra |at least |at most |>= |<= |below |above )$")


def _stated_numbers(text: str):
    """Decimals and percentages in prose, outside code spans, quotations ("...", a paper's
    own words) and example answers (``e.g. {...}``), and not exempt by context."""
    text = re.sub(r"`[^`]*`|\"[^\"\n]*\"|e\.g\. \{[^}\n]*\}", "", text)   # code, quotations, example answers
    for m in NUMBER.finditer(text):
        if not NOT_MEASURED.search(text[max(0, m.start() - 12):m.start()]):
            yield m.group(1)


def _variants(tok: str) -> set:
    """How a stated number may appear in a printed output or a results file."""
    if tok.endswith("%"):
        v = float(tok[:-1]) / 100
        return {tok, f"{v:.2f}", f"{v:.3f}", f"{v:.1f}", f"{v:g}"}
    v = float(tok)
    return {tok, f"{v:.2f}", f"{v:.0%}", f"{v * 100:.1f}%", f"{v:g}"}


def test_notebook_prose_numbers_come_from_above_or_from_the_results():
    results_md = LEARNER_RESULTS.read_text()          # the learners' copy, in notebooks/
    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        seen = ""
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown":
                cites = "](full_scale.md)" in cell.source
                for tok in _stated_numbers(cell.source):
                    forms = _variants(tok)
                    if not any(f in seen for f in forms) and not (cites and any(f in results_md for f in forms)):
                        bad.append(f"{path.name} cell {i}: {tok}")
            seen += cell.source
            for out in cell.get("outputs", []):
                seen += out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
    assert not bad, "numbers in prose that no cell above prints and RESULTS.md does not hold:\n" + "\n".join(bad)


def test_readme_lesson_prose_quotes_only_inputs_or_results():
    readme = (ROOT / "README.md").read_text()
    lessons = readme[readme.index("## The lessons"):readme.index("## The command line")]
    allowed = (ROOT / "benchmarks" / "RESULTS.md").read_text() + " ".join(c.command() for c in claims.CLAIMS)
    bad = [tok for tok in _stated_numbers(lessons) if not any(f in allowed for f in _variants(tok))]
    assert not bad, f"README lesson prose states numbers that are neither settings nor results: {bad}"


def test_learner_text_does_not_talk_about_the_project_process():
    words = re.compile(r"\b(issue tracker|the issue|closing note|the report|our team)\b", re.I)
    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown" and words.search(cell.source):
                bad.append(f"{path.name} cell {i}: {words.search(cell.source).group(0)}")
    assert not bad, bad


def test_learner_text_names_no_internal_claim_ids_and_links_reachable_results():
    """Learners read "full scale" in the notebooks and open it from JupyterLab (rooted at notebooks/)."""
    ids = re.compile(r"\b(" + "|".join(re.escape(c.name) for c in claims.CLAIMS) + r")\b")
    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown" and (ids.search(cell.source) or "benchmarks/" in cell.source):
                bad.append(f"{path.name} cell {i}")
    assert not bad, bad

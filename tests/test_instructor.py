"""The instructor pack's generated files match their generators."""
import importlib.util
from pathlib import Path

import labkit as lk

ROOT = Path(__file__).resolve().parent.parent / "instructor"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_answer_key_is_the_generators_output():
    key = _load("make_answer_key")
    assert (ROOT / "answer_key.md").read_text() == key.render(), \
        "instructor/answer_key.md is stale: run python instructor/make_answer_key.py"


def test_answer_key_holds_every_exercise_and_its_solution(capsys):
    key = _load("make_answer_key")
    text = (ROOT / "answer_key.md").read_text()
    key.render()   # registers every lesson's exercises
    assert len(lk.checks.EXERCISES) >= 15
    for name in lk.checks.EXERCISES:
        lk.checks.solution(name)
        printed = capsys.readouterr().out.strip().split(" solution: ", 1)[1]
        assert f"### `{name}`" in text and key._stable(printed) in text   # sets printed sorted


def test_agenda_is_the_generators_output_and_fits_the_day():
    agenda = _load("make_agenda")
    timings = agenda.load_timings()
    assert (ROOT / "agenda.md").read_text() == agenda.render(timings), \
        "instructor/agenda.md is stale: run python instructor/make_agenda.py"
    for kind in ("half", "full"):
        rows, total = agenda.plan(kind, timings)
        assert total == agenda.TARGET[kind]
        # every slot covers at least the notebook's measured run time
        for _, session, run, slot in rows:
            if run.endswith(" s"):
                assert slot * 60 >= float(run[:-2])
    assert set(timings) == set(agenda.LESSONS)   # every lesson measured, none invented

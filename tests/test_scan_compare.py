"""``python -m labkit.supplychain.compare``: how third-party scanners' exit codes become
verdicts, that they run with a scratch HOME, and how the summary counts them (stand-in
tools: shell scripts with the real tools' names and exit codes)."""

import os
import stat

from labkit.supplychain.compare import compare, find_tools, summarise
from labkit.supplychain.regression import build_regression

SCRIPTS = {
    "picklescan": "exit 1",                                  # flags everything
    "modelscan": "exit 3",                                   # "no supported files"
    "fickling": "echo 'Traceback (most recent call last):' >&2; exit 1",   # crashed
    # clean only when run with a scratch HOME, never the user's
    "modelaudit": '[ "$HOME" != "$REAL_HOME" ] && [ "$PROMPTFOO_DISABLE_TELEMETRY" = 1 ] || exit 2',
}


def test_verdicts_home_and_summary(tmp_path, monkeypatch):
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    for name, body in SCRIPTS.items():
        p = bin_ / name
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("REAL_HOME", os.environ.get("HOME", "/root"))
    tools = find_tools(tmp_path / "venv")
    assert set(tools) == set(SCRIPTS)
    arts = build_regression(tmp_path / "corpus",
                            names=["keras_lambda", "unknown_bytes", "gguf_benign"])
    rows = compare(arts, tools, timeout=30)
    by = {r["artifact"]: r for r in rows}
    assert by["keras_lambda"]["labkit"] == "flagged"
    assert by["unknown_bytes"]["labkit"] == "flagged"     # unverified fails a pipeline too
    assert by["gguf_benign"]["labkit"] == "clean"
    assert {r["picklescan"] for r in rows} == {"flagged"}
    assert {r["modelscan"] for r in rows} == {"skipped"}
    assert {r["fickling"] for r in rows} == {"error"}
    assert {r["modelaudit"] for r in rows} == {"clean"}
    s = {x["scanner"]: x for x in summarise(rows)}
    assert (s["labkit"]["detected"], s["labkit"]["false_alarms"]) == ("2/2", "0/1")
    assert (s["picklescan"]["detected"], s["picklescan"]["false_alarms"]) == ("2/2", "1/1")
    assert (s["modelscan"]["skipped"], s["fickling"]["errors"]) == (3, 3)

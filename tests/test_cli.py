"""The command line contract: `python -m labkit list|run|tour`."""
import json
import subprocess
import sys

import pytest

from labkit.cli import main
from labkit.cli.experiments import JSON_FIELDS


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_registered_method(capsys):
    from labkit.registry import ATTACKS, DEFENCES

    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in list(ATTACKS) + list(DEFENCES):
        assert f"  {name} " in out


def test_run_json_contract_and_determinism(capsys):
    argv = ["run", "label_flip", "--defence", "knn_sanitisation", "--seed", "1", "--rate", "0.2",
            "--set", "strategy=random", "--json"]
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert list(row)[:len(JSON_FIELDS)] == list(JSON_FIELDS)
    assert row["attack"] == "label_flip" and row["n_poison"] == round(0.2 * row["n_train"])
    assert row["params"] == {"rate": 0.2, "strategy": "random"}
    assert set(row["detection"]) >= {"precision", "recall", "f1", "auroc"}
    assert row["attack_success"] is None
    again = json.loads(_run(capsys, *argv)[1])
    row.pop("seconds"), again.pop("seconds")
    assert row == again


def test_targeted_run_reports_attack_success(capsys):
    code, out, _ = _run(capsys, "run", "label_flip", "--rate", "0.5", "--set", "strategy=targeted",
                        "--set", "source_class=3", "--set", "target_class=8", "--json")
    row = json.loads(out)
    assert code == 0 and 0.2 <= row["attack_success"] <= 1


@pytest.mark.parametrize("argv,needle", [
    (["run", "nope"], "valid attacks: label_flip"),
    (["run", "label_flip", "--defence", "nope"], "valid defences:"),
    (["run", "label_flip", "--rate", "1.5"], "--rate: must be in (0, 1]"),
    (["run", "label_flip", "--dataset", "nope"], "invalid choice: 'nope'"),   # argparse: one line too
    (["run", "label_flip", "--set", "strategy=clever"], "strategy must be one of"),
    (["run", "label_flip", "--set", "oops"], "KEY=VALUE"),
    (["run", "label_flip", "--set", "colour=3"], "colour"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "usage:" not in err


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "labkit", "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "label_flip" in proc.stdout

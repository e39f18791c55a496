"""Hash pinning, the scan CLI, and lesson 6's exercises that use them."""

import argparse
import hashlib
import json

import pytest

from labkit.lessons import l06
from labkit.lessons.exercises import EXERCISES
from labkit.supplychain import payloads, pinning
from labkit.supplychain.cli import add_parser
from labkit.supplychain.payloads import ZOO_TARGETS


def test_lock_and_verify(tmp_path):
    a = payloads.benign_checkpoint(tmp_path / "a.pt", rng=0)
    lock = pinning.write_lock([a], tmp_path / "models.lock")
    assert json.loads(lock.read_text())["files"] == {
        "a.pt": hashlib.sha256(a.read_bytes()).hexdigest()}
    assert pinning.verify(a, lock) == hashlib.sha256(a.read_bytes()).hexdigest()
    data = bytearray(a.read_bytes())
    data[-100] ^= 1
    a.write_bytes(bytes(data))
    with pytest.raises(pinning.PinError, match="does not match"):
        pinning.verify(a, lock)
    b = payloads.benign_checkpoint(tmp_path / "b.pt", rng=1)
    with pytest.raises(pinning.PinError, match="not pinned"):
        pinning.verify(b, lock)
    with pytest.raises(pinning.PinError, match="not under"):
        pinning.write_lock([tmp_path.parent / "elsewhere.pt"], lock)
    assert pinning.verify_all(lock) == {"a.pt": False}


def _scan(*argv):
    ap = argparse.ArgumentParser(prog="labkit")
    add_parser(ap.add_subparsers(dest="cmd", required=True))
    args = ap.parse_args(["scan", *map(str, argv)])
    return args.func(args)


def test_cli_exit_codes(tmp_path, capsys):
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    for n in ("state_dict", "npy_float", "safetensors_plain"):
        payloads.build(n, good, rng=0)
    art = payloads.build("nemo_yaml", bad, rng=0)
    assert _scan(good) == 0
    capsys.readouterr()
    assert _scan(good, bad) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{art.path}\tmodel_config.yaml\ttarget\t_target_ = 'builtins.open' at line 3"]
    assert _scan(good, tmp_path / "missing.pt") == 2
    capsys.readouterr()
    assert _scan("--json", bad) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [f["kind"] for f in doc["files"][0]["findings"]] == ["target"]
    allowed = payloads.build("yaml_allowed_targets", tmp_path / "cfg", rng=0)
    assert _scan(allowed.path) == 1
    assert _scan(allowed.path, *[x for n in ZOO_TARGETS for x in ("--allow", n)]) == 0
    assert not art.marker.exists()


def _check(name, answer):
    """The registered checker's ``(passed, message)`` (no printing)."""
    return EXERCISES[name].checker(answer)


def test_exercise_placeholders_inside_answers_do_not_raise():
    assert _check("l6_allow_list", "builtins.open")[0] is False      # not a set of names
    assert _check("l6_scan_allow", [1, 2])[0] is False
    passed, msg = _check("l6_tampered", (None, "unused"))
    assert passed is False and "TAMPERED" in msg
    assert _check("l6_tampered", "shard_0.pt")[0] is False           # no lock file


def test_exercise_1_and_2_solutions_pass_and_wrong_answers_fail():
    assert _check("l6_allow_list", set(ZOO_TARGETS))[0] is True  # runs in the sandbox
    assert _check("l6_allow_list", {"labkit.supplychain.zoo.*"})[0] is False
    assert _check("l6_scan_allow", set(ZOO_TARGETS))[0] is True
    assert _check("l6_scan_allow", {"labkit.supplychain.zoo.TinyNet"})[0] is False
    assert _check("l6_scan_allow", set(ZOO_TARGETS) | {"builtins.open"})[0] is False


def test_exercise_1_static_feedback_needs_no_sandbox():
    passed, msg = _check("l6_allow_list", {"labkit.supplychain.zoo.TinyNet"})
    assert passed is False and "linear_warmup" in msg
    passed, msg = _check("l6_allow_list", set(ZOO_TARGETS) | {"builtins.open"})
    assert passed is False and "builtins.open" in msg


def test_exercise_3(tmp_path):
    lock = l06.tamper_demo(tmp_path, rng=0, tampered=2)
    assert _check("l6_tampered", ("shard_0.pt", lock))[0] is False
    assert _check("l6_tampered", ("shard_2.pt", lock))[0] is True

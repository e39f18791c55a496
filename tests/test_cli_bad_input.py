"""Bad input to every command of ``python -m labkit``: one line on stderr, exit 2 (or the
code the command documents: 1 when a check finds something), no traceback, no hang, and
nothing written into the folder it runs in, HOME, the inputs or the checkout.

One table: unknown names, bad ``--set`` values, rates outside (0, 1], NaN, huge numbers,
missing, garbled or damaged files, special files (FIFOs, /dev/zero), tampered manifests,
forged completion codes, malformed flag files, damaged notebooks. Cases that meet a special
file run in a subprocess with a timeout (an ``open()`` of a FIFO would block forever); the
rest run in-process, for speed. ``reproduce`` and ``bench`` are checked on their arguments
only: no case reaches their long work.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_KEY = "a-manifest-key-of-32-bytes-xxxxx"
WORKSHOP_KEY = "a-workshop-key"
TIMEOUT = 60


def _notebook(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Every bad file the table refers to as ``{d}/NAME``."""
    from labkit.data import load
    from labkit.defences import provenance as prov
    from labkit.progress import completion_code

    d = tmp_path_factory.mktemp("inputs")
    os.mkfifo(d / "fifo")
    os.mkfifo(d / "fifo.ipynb")
    (d / "fifodir").mkdir()
    (d / "fifodir" / "ok.json").write_text("{}")
    os.mkfifo(d / "fifodir" / "model.pt")
    rng = np.random.default_rng(0)
    X, y = rng.random((10, 8, 8)), np.arange(10) % 3
    np.savez(d / "ok.npz", X=X, y=y)
    (d / "garbled.npz").write_bytes(rng.bytes(300))
    (d / "zipjunk.npz").write_bytes(b"PK\x03\x04" + rng.bytes(200))
    np.save(d / "plain.npy", X)
    np.savez(d / "nokeys.npz", a=X)
    np.savez(d / "nan.npz", X=np.where(X > 0.5, np.nan, X), y=y)
    np.savez(d / "range.npz", X=X * 300, y=y)
    np.savez(d / "shape.npz", X=X, y=y[:4])
    np.savez(d / "neglabel.npz", X=X, y=y - 5)
    np.savez(d / "floatlabel.npz", X=X, y=y + 0.5)
    np.savez(d / "strings.npz", X=np.full((10, 8, 8), "a"), y=y)
    np.savez(d / "objects.npz", X=np.array([{"a": 1}] * 10, dtype=object), y=y)
    np.savez(d / "empty.npz", X=np.zeros((0, 8, 8)), y=np.zeros(0, int))
    np.savez(d / "flat.npz", X=X.reshape(10, -1), y=y)

    train = load("digits", seed=0).train
    manifest = prov.create_manifest(train, key=MANIFEST_KEY.encode(), source="test", created="2026-01-01")
    (d / "valid.json").write_text(json.dumps(manifest))
    (d / "tampered.json").write_text(json.dumps(dict(manifest, source="evil")))
    rows = list(manifest["rows"])
    rows[3] = "0" * 64
    (d / "tamperedrows.json").write_text(json.dumps(dict(manifest, rows=rows)))
    other = prov.create_manifest(train, key=b"another-key-of-some-length", source="test", created="2026-01-01")
    (d / "otherkey.json").write_text(json.dumps(other))
    (d / "badrows.json").write_text(json.dumps({"rows": 5, "root": "x", "signature": "y"}))
    (d / "garbled.json").write_text("{not json")
    (d / "list.json").write_text("[]")
    (d / "binary.json").write_bytes(b"\xff\xfe\x00\x81")
    changed = train.X.copy()
    changed[7] = 0.0
    np.savez(d / "changed.npz", X=changed[:, 0], y=train.y)
    (d / "empty.key").write_text("\n")
    (d / "short.key").write_text("abc")

    for name, text in {"huge": "99999999999999999999999", "hugefloat": "1e400", "negative": "3\n-5",
                       "float": "1.5", "words": "one two", "outofrange": "100000", "unicode": "١٢",
                       "empty_ok": ""}.items():
        (d / f"{name}.txt").write_text(text)
    (d / "binary.txt").write_bytes(b"\x00\xff\xfe" * 10)

    _notebook(d / "home_broken" / "learner01" / "broken.ipynb", "{not json")
    _notebook(d / "home_list" / "learner01" / "a.ipynb", [])
    _notebook(d / "home_cells" / "learner01" / "a.ipynb", {"cells": "not a list"})
    _notebook(d / "home_outputs" / "learner01" / "a.ipynb", {"cells": [{"outputs": 5}]})
    _notebook(d / "home_binary" / "learner01" / "a.ipynb", b"\xff\xfe\x00")
    _notebook(d / "home_ok" / "learner01" / "a.ipynb", {"cells": []})
    (d / "home_fifo" / "learner01").mkdir(parents=True)
    os.mkfifo(d / "home_fifo" / "learner01" / "01.ipynb")
    (d / "bad.ipynb").write_text("{not json")
    (d / "list.ipynb").write_text("[]")
    (d / "rdir").mkdir()
    (d / "rdir" / "results.json").write_text("{damaged")
    (d / "forged.txt").write_text(completion_code("learner01", "l1_certified_radius", "another key"))
    return d


# (id, command line with {d} for the inputs folder, exit code, how to run)
#   how: "in" in-process; "sub" a subprocess with a timeout (special files); code None = not 0
CASES = [
    # --- the command itself
    ("no-command", "", 2, "in"),
    ("unknown-command", "nosuch", 2, "in"),
    # --- run
    ("run-unknown-attack", "run nope", 2, "in"),
    ("run-unknown-defence", "run label_flip --defence nope", 2, "in"),
    ("run-defence-not-applicable", "run label_flip --defence strip", 2, "in"),
    ("run-rate-above-1", "run label_flip --rate 1.5", 2, "in"),
    ("run-rate-negative", "run label_flip --rate -0.1", 2, "in"),
    ("run-rate-zero", "run label_flip --rate 0", 2, "in"),
    ("run-rate-nan", "run label_flip --rate nan", 2, "in"),
    ("run-rate-inf", "run label_flip --rate inf", 2, "in"),
    ("run-rate-huge", "run label_flip --rate 1e999", 2, "in"),
    ("run-rate-word", "run label_flip --rate abc", 2, "in"),
    ("run-seed-negative", "run label_flip --seed -1", 2, "in"),
    ("run-seed-huge", "run label_flip --seed 99999999999999999999999", 2, "in"),
    ("run-seed-float", "run label_flip --seed 1.5", 2, "in"),
    ("run-set-no-equals", "run label_flip --set oops", 2, "in"),
    ("run-set-bad-key", "run label_flip --set 1x=3", 2, "in"),
    ("run-set-bad-choice", "run label_flip --set strategy=clever", 2, "in"),
    ("run-set-unknown", "run label_flip --set colour=3", 2, "in"),
    ("run-set-rate-above-1", "run label_flip --set rate=2", 2, "in"),
    ("run-set-rate-nan", "run label_flip --set rate=nan", 2, "in"),
    ("run-set-rate-huge", "run label_flip --set rate=1e999", 2, "in"),
    ("run-set-class-huge", "run backdoor --set target_class=99999999999999999999", 2, "in"),
    ("run-set-trigger-unknown", "run backdoor --set trigger=nope", 2, "in"),
    ("run-set-code", "run label_flip --set rate=__import__('os').getcwd()", 2, "in"),
    ("run-defence-set-negative", "run label_flip --defence knn_sanitisation --defence-set k=-3", 2, "in"),
    ("run-defence-set-no-equals", "run label_flip --defence-set oops", 2, "in"),
    ("run-unknown-dataset", "run label_flip --dataset nope", 2, "in"),
    ("run-no-attack", "run", 2, "in"),
    ("run-unknown-flag", "run label_flip --bogus", 2, "in"),
    # --- list, tour
    ("list-unknown-flag", "list --bogus", 2, "in"),
    ("list-extra-argument", "list extra", 2, "in"),
    ("tour-seed-negative", "tour --seed -5", 2, "in"),
    ("tour-seed-word", "tour --seed x", 2, "in"),
    ("tour-unknown-flag", "tour --quick --nope", 2, "in"),
    # --- audit
    ("audit-npz-missing", "audit --npz {d}/missing.npz", 2, "in"),
    ("audit-npz-garbled", "audit --npz {d}/garbled.npz", 2, "in"),
    ("audit-npz-broken-zip", "audit --npz {d}/zipjunk.npz", 2, "in"),
    ("audit-npz-is-npy", "audit --npz {d}/plain.npy", 2, "in"),
    ("audit-npz-no-X", "audit --npz {d}/nokeys.npz", 2, "in"),
    ("audit-npz-nan", "audit --npz {d}/nan.npz", 2, "in"),
    ("audit-npz-out-of-range", "audit --npz {d}/range.npz", 2, "in"),
    ("audit-npz-length-mismatch", "audit --npz {d}/shape.npz", 2, "in"),
    ("audit-npz-negative-labels", "audit --npz {d}/neglabel.npz", 2, "in"),
    ("audit-npz-float-labels", "audit --npz {d}/floatlabel.npz", 2, "in"),
    ("audit-npz-strings", "audit --npz {d}/strings.npz", 2, "in"),
    ("audit-npz-pickled-objects", "audit --npz {d}/objects.npz", 2, "in"),
    ("audit-npz-empty", "audit --npz {d}/empty.npz", 2, "in"),
    ("audit-npz-flat", "audit --npz {d}/flat.npz", 2, "in"),
    ("audit-npz-folder", "audit --npz {d}", 2, "in"),
    ("audit-npz-fifo", "audit --npz {d}/fifo", 2, "sub"),
    ("audit-npz-dev-zero", "audit --npz /dev/zero", 2, "sub"),
    ("audit-top-negative", "audit --top -3", 2, "in"),
    ("audit-top-zero", "audit --top 0", 2, "in"),
    ("audit-top-huge", "audit --top 1000000000000000000000000000000", 2, "in"),
    ("audit-top-word", "audit --top x", 2, "in"),
    ("audit-unknown-attack", "audit --attack nope", 2, "in"),
    ("audit-rate-above-1", "audit --attack label_flip --rate 2", 2, "in"),
    ("audit-rate-nan", "audit --attack label_flip --rate nan", 2, "in"),
    ("audit-rate-without-attack", "audit --rate 0.1", 2, "in"),
    ("audit-attack-with-npz", "audit --attack label_flip --npz {d}/ok.npz", 2, "in"),
    ("audit-seed-negative", "audit --seed -1", 2, "in"),
    # --- manifest
    ("manifest-missing", "manifest verify --manifest {d}/none.json", 2, "in"),
    ("manifest-verify-without-manifest", "manifest verify", 2, "in"),
    ("manifest-garbled", "manifest verify --manifest {d}/garbled.json", 2, "in"),
    ("manifest-a-list", "manifest verify --manifest {d}/list.json", 2, "in"),
    ("manifest-not-utf8", "manifest verify --manifest {d}/binary.json", 2, "in"),
    ("manifest-tampered-field", "manifest verify --manifest {d}/tampered.json", 2, "in"),
    ("manifest-tampered-rows", "manifest verify --manifest {d}/tamperedrows.json", 2, "in"),
    ("manifest-other-key", "manifest verify --manifest {d}/otherkey.json", 2, "in"),
    ("manifest-rows-not-a-list", "manifest verify --manifest {d}/badrows.json", 2, "in"),
    ("manifest-folder", "manifest verify --manifest {d}", 2, "in"),
    ("manifest-fifo", "manifest verify --manifest {d}/fifo", 2, "sub"),
    ("manifest-dev-zero", "manifest verify --manifest /dev/zero", 2, "sub"),
    ("manifest-no-key", "manifest verify --manifest {d}/valid.json", 2, "in-nokey"),
    ("manifest-key-file-missing", "manifest verify --manifest {d}/valid.json --key-file {d}/missing.key", 2, "in"),
    ("manifest-key-file-empty", "manifest verify --manifest {d}/valid.json --key-file {d}/empty.key", 2, "in"),
    ("manifest-key-file-short", "manifest verify --manifest {d}/valid.json --key-file {d}/short.key", 2, "in"),
    ("manifest-key-file-fifo", "manifest verify --manifest {d}/valid.json --key-file {d}/fifo", 2, "sub"),
    ("manifest-npz-nan", "manifest verify --manifest {d}/valid.json --npz {d}/nan.npz", 2, "in"),
    ("manifest-rows-changed", "manifest verify --manifest {d}/valid.json --npz {d}/changed.npz", 1, "in"),
    ("manifest-create-out-folder", "manifest create --out {d}", 2, "in"),
    ("manifest-create-out-fifo", "manifest create --out {d}/fifo", 2, "sub"),
    ("manifest-create-with-manifest", "manifest create --manifest {d}/valid.json", 2, "in"),
    ("manifest-unknown-action", "manifest nope", 2, "in"),
    # --- challenge
    ("challenge-score-missing", "challenge --score {d}/missing.txt", 2, "in"),
    ("challenge-score-huge", "challenge --score {d}/huge.txt", 2, "in"),
    ("challenge-score-huge-float", "challenge --score {d}/hugefloat.txt", 2, "in"),
    ("challenge-score-negative", "challenge --score {d}/negative.txt", 2, "in"),
    ("challenge-score-float", "challenge --score {d}/float.txt", 2, "in"),
    ("challenge-score-words", "challenge --score {d}/words.txt", 2, "in"),
    ("challenge-score-out-of-range", "challenge --score {d}/outofrange.txt", 2, "in"),
    ("challenge-score-binary", "challenge --score {d}/binary.txt", 2, "in"),
    ("challenge-score-unicode-digits", "challenge --score {d}/unicode.txt", 2, "in"),
    ("challenge-score-folder", "challenge --score {d}", 2, "in"),
    ("challenge-score-fifo", "challenge --score {d}/fifo", 2, "sub"),
    ("challenge-score-dev-zero", "challenge --score /dev/zero", 2, "sub"),
    ("challenge-export-dot", "challenge --export .", 2, "in"),
    ("challenge-export-folder", "challenge --export {d}", 2, "in"),
    ("challenge-export-no-folder", "challenge --export {d}/nosuchdir/x.npz", 2, "in"),
    ("challenge-export-not-npz", "challenge --export x.txt", 2, "in"),
    ("challenge-export-fifo", "challenge --export {d}/fifo", 2, "sub"),
    ("challenge-export-then-bad-score", "challenge --export out.npz --score {d}/huge.txt", 2, "in"),
    ("challenge-seed-negative", "challenge --seed -1", 2, "in"),
    ("challenge-seed-huge", "challenge --seed 1e400", 2, "in"),
    # --- progress
    ("progress-report-missing-root", "progress report {d}/nosuchdir", 2, "in"),
    ("progress-report-root-is-file", "progress report {d}/garbled.json", 2, "in"),
    ("progress-report-root-dev-zero", "progress report /dev/zero", 2, "sub"),
    ("progress-report-broken-notebook", "progress report {d}/home_broken", 2, "in"),
    ("progress-report-notebook-a-list", "progress report {d}/home_list", 2, "in"),
    ("progress-report-cells-not-a-list", "progress report {d}/home_cells", 2, "in"),
    ("progress-report-outputs-damaged", "progress report {d}/home_outputs", 2, "in"),
    ("progress-report-notebook-binary", "progress report {d}/home_binary", 2, "in"),
    ("progress-report-notebook-fifo", "progress report {d}/home_fifo", 2, "sub"),
    ("progress-report-no-key", "progress report {d}/home_ok", 2, "in-nokey"),
    ("progress-verify-forged-code", "progress verify learner01:AAAAAAAAAA", 1, "in"),
    ("progress-verify-forged-bare-code", "progress verify --learner learner01 AAAAAAAAAA", 1, "in"),
    ("progress-verify-other-key", "progress verify learner01:{forged}", 1, "in"),
    ("progress-verify-path-as-code", "progress verify ../../etc/passwd", 1, "in"),
    ("progress-verify-no-codes", "progress verify", 2, "in"),
    ("progress-unknown-action", "progress nope x", 2, "in"),
    ("progress-verify-empty-key", "progress verify --key= learner01:AAAAAAAAAA", 2, "in-nokey"),
    # --- scan
    ("scan-no-path", "scan", 2, "in"),
    ("scan-missing", "scan {d}/missing.pt", 2, "in"),
    ("scan-fifo", "scan {d}/fifo", 2, "sub"),
    ("scan-folder-with-fifo", "scan {d}/fifodir", 2, "sub"),
    ("scan-dev-zero", "scan /dev/zero", None, "sub"),
    ("scan-dev-null", "scan /dev/null", None, "sub"),
    ("scan-unknown-format", "scan --format xml {d}/ok.npz", 2, "in"),
    ("scan-allow-without-name", "scan {d}/ok.npz --allow", 2, "in"),
    ("scan-unknown-flag", "scan --bogus {d}/ok.npz", 2, "in"),
    # --- reproduce (arguments only)
    ("reproduce-unknown-claim", "reproduce --claims nope --out {d}/rnew", 2, "in"),
    ("reproduce-seed-negative", "reproduce --seeds -1", 2, "in"),
    ("reproduce-seed-word", "reproduce --seeds abc", 2, "in"),
    ("reproduce-seed-huge", "reproduce --seeds 99999999999999999999", 2, "in"),
    ("reproduce-jobs-zero", "reproduce --jobs 0", 2, "in"),
    ("reproduce-jobs-negative", "reproduce --jobs -2", 2, "in"),
    ("reproduce-jobs-huge", "reproduce --jobs 99999999999", 2, "in"),
    ("reproduce-out-is-file", "reproduce --out {d}/garbled.json", 2, "in"),
    ("reproduce-out-fifo", "reproduce --out {d}/fifo", 2, "sub"),
    ("reproduce-damaged-results", "reproduce --claims l1_random_flips --seeds 3 --out {d}/rdir --no-progress", 2, "in"),
    # --- bench (arguments only)
    ("bench-unknown-where", "bench --where nowhere", 2, "in"),
    ("bench-notebook-missing", "bench {d}/missing.ipynb", 2, "in"),
    ("bench-notebook-garbled", "bench {d}/bad.ipynb", 2, "in"),
    ("bench-notebook-a-list", "bench {d}/list.ipynb", 2, "in"),
    ("bench-not-a-notebook", "bench {d}/garbled.json", 2, "in"),
    ("bench-notebook-fifo", "bench {d}/fifo.ipynb", 2, "sub"),
    ("bench-contradictory-flags", "bench --notebooks-only --widgets-only", 2, "in"),
]


def test_the_table_covers_every_command_and_enough_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1].split()[0] for c in CASES if c[1]}
    assert commands >= {"run", "list", "tour", "audit", "manifest", "progress", "challenge", "scan",
                        "reproduce", "bench"}


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def _checkout_names() -> set:
    """Names in the checkout's folders a command could write to by mistake."""
    out = set()
    for sub in ("", "data", "data/manifests", "benchmarks", "notebooks"):
        folder = ROOT / sub
        if folder.is_dir():
            out |= {f"{sub}/{p.name}" for p in folder.iterdir()}
    return out


@pytest.mark.parametrize("name,line,code,how", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, line, code, how, inputs, tmp_path, monkeypatch, capsys):
    forged = (inputs / "forged.txt").read_text()
    argv = shlex.split(line.format(d=inputs, forged=forged))
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir(), home.mkdir()
    env = dict(os.environ, HOME=str(home), LABKIT_MANIFEST_KEY=MANIFEST_KEY, LAB_WORKSHOP_KEY=WORKSHOP_KEY)
    if how.endswith("nokey"):
        env.pop("LABKIT_MANIFEST_KEY"), env.pop("LAB_WORKSHOP_KEY")
    before_inputs, before_checkout = _snapshot(inputs), _checkout_names()

    if how == "sub":
        proc = subprocess.run([sys.executable, "-m", "labkit", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        monkeypatch.chdir(cwd)
        for k in ("HOME", "LABKIT_MANIFEST_KEY", "LAB_WORKSHOP_KEY"):
            if k in env:
                monkeypatch.setenv(k, env[k])
            else:
                monkeypatch.delenv(k, raising=False)
        rc = main(argv)
        out, err = capsys.readouterr()

    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in out + err, err
    if code is None:
        assert rc != 0, (out, err)
    else:
        assert rc == code, (out, err)
    if rc == 2:
        assert len(lines) == 1, err          # one line: the reason
        if not argv or argv[0] != "scan":    # scan's reason is its finding on stdout
            assert lines[0].startswith(("error: ", "REJECTED: ")), err
    else:
        assert len(lines) <= 1, err
    # nothing written where it should not be
    assert not any(cwd.iterdir()), sorted(p.name for p in cwd.iterdir())
    assert not any(home.iterdir()), sorted(p.name for p in home.iterdir())
    assert _snapshot(inputs) == before_inputs
    new = _checkout_names() - before_checkout
    suspicious = {n for n in new if n.endswith(".npz") or any(Path(a).name in n for a in argv if len(a) > 2)}
    assert not suspicious, suspicious

"""The supply-chain corpus: every malicious variant really fires with its vulnerable
loader, the scanner flags 100% of them and 0% of the benign controls, scanning fires
nothing, and the safe loaders block the pickles."""

import hashlib
import os
from pathlib import Path

import pytest

from labkit.supplychain import loaders, payloads, scanner
from labkit.supplychain.payloads import ZOO_TARGETS


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


SAFE = {"torch": "torch_safe", "numpy": "numpy_safe"}
# benign files the *safe* loaders must load (the scanner must never flag those)
SAFE_BENIGN = {"state_dict": "torch_safe", "state_dict_rich": "torch_safe",
               "safetensors_plain": "torch_safe", "legacy_state_dict": "torch_safe",
               "legacy_state_dict_large": "torch_safe", "safetensors_large": "torch_safe",
               "npz_odd_dtypes": "numpy_safe", "npy_descr_spelling": "numpy_safe",
               "npy_float": "numpy_safe", "npz_arrays": "numpy_safe"}


def _escape_artifacts(root: Path):
    """Payloads that try to leave the sandbox: write outside, start a process."""
    import pickle
    import subprocess

    outside = root / "outside"
    outside.mkdir()
    inside = root / "inside"
    inside.mkdir()
    p = inside / "escape.yaml"
    p.write_text(f"a:\n  _target_: builtins.open\n  file: '{outside / 'x'}'\n  mode: w\n")

    class Spawn:
        def __reduce__(self):
            return (subprocess.Popen, (["true"],))

    q = inside / "proc.pkl"
    q.write_bytes(pickle.dumps(Spawn()))
    return outside, [("escape", p, "config", None), ("proc", q, "pickle", None)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Build the corpus, scan it, then run every load the tests need in ONE sandboxed
    child (torch is slow to import; one child keeps the suite fast)."""
    root = tmp_path_factory.mktemp("corpus")
    arts = payloads.build_corpus(root, rng=0)
    before = _tree(root)
    reports = {a.name: scanner.scan_file(a.path, allow=ZOO_TARGETS) for a in arts}
    after_scan = _tree(root)
    outside, escapes = _escape_artifacts(tmp_path_factory.mktemp("sandbox"))
    groups = {
        "vulnerable": [(a.name, a.path, a.loader, a.marker) for a in arts],
        "safe_pickles": [(a.name, a.path, SAFE[a.loader], a.marker) for a in arts
                         if a.malicious and a.loader in SAFE],
        "safe_benign": [(a.name, a.path, SAFE_BENIGN[a.name], None) for a in arts
                        if a.name in SAFE_BENIGN],
        "exact_configs": [(a.name, a.path, "config_exact", a.marker) for a in arts
                          if a.malicious and a.loader == "config"],
        "nemo_safe": [(a.name, a.path, "nemo_safe", a.marker) for a in arts
                      if a.loader == "nemo"],
        "escapes": escapes,
    }
    flat = [item for g in groups.values() for item in g]
    outs = iter(loaders.load_in_subprocess(flat, allow=ZOO_TARGETS))
    results = {k: [next(outs) for _ in g] for k, g in groups.items()}
    return {"root": root, "arts": arts, "reports": reports, "before": before,
            "after_scan": after_scan, "results": results, "outside": outside,
            "outcomes": {o.name: o for o in results["vulnerable"]}}


def test_corpus_size(corpus):
    arts = corpus["arts"]
    assert sum(a.malicious for a in arts) >= 50
    assert sum(not a.malicious for a in arts) >= 24
    assert len({a.name for a in arts}) == len(arts)


def test_scanning_fires_no_canary_and_changes_nothing(corpus):
    assert corpus["after_scan"] == corpus["before"]
    assert not any(name.rsplit("/", 1)[-1].startswith("CANARY") for name in corpus["before"])


def test_every_malicious_variant_fires_with_its_vulnerable_loader(corpus):
    """Ground truth: a variant counts as malicious because its payload really runs."""
    not_fired = [a.name for a in corpus["arts"] if a.malicious
                 and not corpus["outcomes"][a.name].fired]
    assert not_fired == []


def test_benign_controls_load_without_firing(corpus):
    for a in corpus["arts"]:
        if not a.malicious:
            o = corpus["outcomes"][a.name]
            assert (o.fired, o.status) == (False, "loaded"), (a.name, o)
            assert not list(a.path.parent.glob("CANARY*"))


def test_scanner_flags_all_malicious_and_no_benign(corpus):
    reports = corpus["reports"]
    missed = [a.name for a in corpus["arts"] if a.malicious and reports[a.name].verdict != "flagged"]
    false_pos = [(a.name, reports[a.name].findings) for a in corpus["arts"]
                 if not a.malicious and reports[a.name].verdict != "clean"]
    assert missed == []
    assert false_pos == []


def test_an_error_is_not_safety(corpus):
    """Raw pickles fire *before* torch reports a corrupt file."""
    for name in ("raw_pickle_p0", "raw_pickle_p2", "pickle_broken_stream", "pickle_stacked_legacy"):
        o = corpus["outcomes"][name]
        assert o.fired and o.status == "error", (name, o)


def test_variants_cover_the_pickle_tricks(corpus):
    ops, protos = set(), set()
    for a in corpus["arts"]:
        if a.malicious and a.carrier == "pickle" and a.path.read_bytes()[:2] != b"PK":
            data = a.path.read_bytes()
            trace = scanner.pickle_ops(data, limit=10_000)
            ops |= {name for _, name, _ in trace}
            protos.add(data[1] if data[0] == 0x80 else 0)
    assert {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "MEMOIZE", "BINGET", "DUP", "POP",
            "REDUCE"} <= ops
    assert {0, 2, 4, 5} <= protos
    carriers = {a.name for a in corpus["arts"] if a.malicious and a.carrier == "config"}
    assert {"yaml_target_open", "json_hf_config", "safetensors_meta_json",
            "safetensors_meta_literal", "nemo_yaml", "partial_factory", "reexport_target",
            "alias_target", "yaml_python_tag"} <= carriers


def test_decoys_do_not_hide_the_memoised_name(corpus):
    art = next(a for a in corpus["arts"] if a.name == "pickle_memo_get")
    names = scanner.pickle_globals(art.path.read_bytes())
    assert names == ["builtins.open"]  # not the decoy collections.OrderedDict
    # a naive "last two strings before STACK_GLOBAL" reading would see the decoys
    strings = [arg for _, name, arg in scanner.pickle_ops(art.path.read_bytes())
               if name == "SHORT_BINUNICODE"]
    assert strings[2:4] == ["collections", "OrderedDict"]


def test_safe_loaders_block_pickles(corpus):
    outs = corpus["results"]["safe_pickles"]
    assert len(outs) >= 15
    assert [o.name for o in outs if o.fired] == []
    assert all(o.status in ("blocked", "error") for o in outs)
    # torch's weights-only unpickler / numpy's allow_pickle=False refuse nearly all;
    # the rest fail as malformed (broken stream, legacy stack) before any call
    assert sum(o.status == "blocked" for o in outs) >= len(outs) - 2
    safe = corpus["results"]["safe_benign"]
    assert [(o.name, o.status) for o in safe] == [(o.name, "loaded") for o in safe]
    assert len(safe) == len(SAFE_BENIGN)


def test_exact_allow_list_blocks_every_config_in_the_sandbox(corpus):
    outs = corpus["results"]["exact_configs"]
    assert len(outs) >= 8
    assert [(o.name, o.verdict) for o in outs] == [(o.name, "blocked") for o in outs]
    nemo = {o.name: o.verdict for o in corpus["results"]["nemo_safe"]}
    assert nemo == {"nemo_ckpt": "blocked", "nemo_yaml": "blocked", "tar_v7_nemo": "blocked",
                    "nemo_benign": "loaded"}


def test_same_seed_same_bytes(tmp_path):
    a = payloads.build("state_dict_large", tmp_path / "a", rng=3)
    b = payloads.build("state_dict_large", tmp_path / "b", rng=3)
    sd_a = scanner.member_bytes(a.path)
    assert sd_a == scanner.member_bytes(b.path)
    import torch

    ta = torch.load(a.path, weights_only=True)
    tb = torch.load(b.path, weights_only=True)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_sandbox_refuses_writes_outside_and_processes(corpus):
    """The child refuses writing outside the artifact folders and spawning processes."""
    outs = corpus["results"]["escapes"]
    assert [o.status for o in outs] == ["blocked", "blocked"]
    assert "SandboxViolation" in outs[1].error
    assert os.listdir(corpus["outside"]) == []


def test_scan_summary_and_tables(tmp_path):
    from labkit.lessons import l06 as report

    arts = payloads.build_corpus(tmp_path, rng=0, names=["torch_reduce", "nemo_yaml", "state_dict"])
    arts[0].marker.write_text("left over from an earlier, deliberate load")
    assert report.scan_summary(arts) == {"malicious_flagged": 2, "n_malicious": 2,
                                         "benign_flagged": 0, "n_benign": 1,
                                         "canaries_fired_during_scan": 0}
    t = report.scan_table(arts)
    assert t.column("verdict") == ["flagged", "flagged", "clean"]
    assert str(tmp_path) not in str(t) and "(byte" not in str(t)
    ops = report.opcode_table(scanner.member_bytes(arts[2].path), limit=3)
    assert ops.column("opcode") == ["PROTO", "EMPTY_DICT", "BINPUT"]
    assert "note" in report.third_party_table(arts).rows[0] or len(report.third_party_table(arts).rows) == 3


def test_select_and_describe(corpus):
    from labkit.lessons import l06 as report

    arts = corpus["arts"]
    bad = payloads.select(arts, malicious=True)
    assert bad and all(a.malicious for a in bad)
    two = payloads.select(arts, names=["state_dict", "torch_reduce"])
    assert [a.name for a in two] == ["torch_reduce", "state_dict"]  # corpus order
    assert payloads.select(arts, names=["torch_reduce"], malicious=False) == []
    with pytest.raises(KeyError):
        payloads.select(arts, names=["no_such_variant"])
    assert report.describe(two).column("loader") == ["torch", "torch"]

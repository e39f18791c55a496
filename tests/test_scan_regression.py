"""The regression corpus (:mod:`labkit.supplychain.regression`: today's model formats,
config-parser gaps, bytes in no known format; each row cites its CVE or paper): every
malicious row flagged, every benign row clean, no canary fired by a scan, and the rows
whose real loader installs here (PyYAML, OmegaConf/Hydra, jinja2, json + Hydra for
safetensors metadata) proven to fire with it in the sandboxed subprocess.
"""

import json
from pathlib import Path

import pytest

from labkit.supplychain import cli, formats
from labkit.supplychain.blob import Blob
from labkit.supplychain.loaders import BlockedTarget, load_in_subprocess, safe_instantiate
from labkit.supplychain.regression import BENIGN, CHATML, MALICIOUS, ROWS, build_regression
from labkit.supplychain.scanner import scan_file


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    arts = build_regression(tmp_path_factory.mktemp("regression"))
    return {a.name: (a.path, a.path.parent / "CANARY") for a in arts}



def test_provenance_table_is_complete():
    names = [r[0] for r in ROWS]
    assert len(names) == len(set(names))
    for name, technique, ref, built, malicious, builder, loader in ROWS:
        assert technique and ref and built.split()[0] in ("spec", "text", "library")
        assert callable(builder)
    cves = {r[2] for r in ROWS}
    for cve in ("CVE-2025-1550", "CVE-2025-8747", "CVE-2025-9906", "CVE-2025-49655",
                "CVE-2026-1462", "CVE-2025-9905", "CVE-2024-34359", "CVE-2022-25882",
                "CVE-2024-27318", "CVE-2025-51480", "CVE-2025-54412", "CVE-2025-54413",
                "CVE-2025-54886"):
        assert cve in cves, cve


@pytest.mark.parametrize("row", MALICIOUS, ids=[r[0] for r in MALICIOUS])
def test_every_malicious_row_is_flagged(corpus, row):
    path, marker = corpus[row[0]]
    r = scan_file(path)
    assert r.verdict in ("flagged", "unverified"), (row[0], r.findings)
    assert not marker.exists()


@pytest.mark.parametrize("row", BENIGN, ids=[r[0] for r in BENIGN])
def test_every_benign_row_is_clean(corpus, row):
    path, _ = corpus[row[0]]
    r = scan_file(path)
    assert r.verdict == "clean", r.findings


EXPECTED_KIND = {
    "keras_lambda": "code", "keras_module_builtins_open": "code", "keras_get_file": "code",
    "keras_unsafe_deser": "code", "keras_torch_wrapper": "code", "keras_tfsm": "code",
    "h5_lambda": "code", "h5_hidden_config": "unverified",
    "gguf_ssti_cycler": "template", "gguf_ssti_subclasses": "template",
    "gguf_truncated": "malformed", "tokenizer_config_attr": "template",
    "tokenizer_config_folded": "template", "tokenizer_config_ssti": "template",
    "template_trigger": "template-trigger", "hf_auto_map": "code",
    "onnx_absolute_external": "external-path", "onnx_traversal_external": "external-path",
    "onnx_subgraph_external": "external-path", "onnx_truncated": "malformed",
    "skops_operator": "code", "skops_method": "code", "skops_untrusted_type": "code",
    "skops_card_pickle": "code", "mar_handler": "code", "sevenzip_random": "unverified",
    "unknown_bytes": "unverified", "yaml_reserved_directive": "yaml-python-tag",
    "yaml_tag_directive": "yaml-python-tag", "yaml_alias_key": "target",
    "safetensors_meta_over_1mib": "budget", "safetensors_leading_space": "target",
    "json_65mib": "budget",
}


def test_each_row_gets_the_finding_of_its_rule(corpus):
    assert set(EXPECTED_KIND) == {r[0] for r in MALICIOUS}
    wrong = {}
    for name, kind in EXPECTED_KIND.items():
        kinds = {f.kind for f in scan_file(corpus[name][0]).findings}
        if kind not in kinds:
            wrong[name] = sorted(kinds)
    assert wrong == {}


def test_no_canary_fired_during_the_scans(corpus):
    for path, _ in corpus.values():
        scan_file(path)
    assert [n for n, (_, m) in corpus.items() if m.exists()] == []


def test_rows_fire_with_their_real_loader_where_it_installs(corpus):
    """The rows whose loader is installed here (PyYAML, Hydra, jinja2, json) fire their
    canary in the sandboxed subprocess: the techniques are real, not scanner folklore."""
    rows = [r for r in MALICIOUS if r[6] is not None]
    assert len(rows) >= 6
    items = [(name, corpus[name][0], loader, corpus[name][1])
             for name, *_, loader in rows]
    outcomes = load_in_subprocess(items)
    assert {o.name: o.verdict for o in outcomes} == {r[0]: "FIRED" for r in rows}
    for name, *_ in rows:  # re-arm the canaries for the other tests
        corpus[name][1].unlink(missing_ok=True)


def test_benign_templates_render_and_the_sandbox_stops_the_escape(corpus):
    items = [("gguf_benign", corpus["gguf_benign"][0], "chat_template", None),
             ("ssti", corpus["gguf_ssti_cycler"][0], "chat_template_safe",
              corpus["gguf_ssti_cycler"][1])]
    out = load_in_subprocess(items)
    assert [o.verdict for o in out] == ["loaded", "blocked"]


def test_unverified_has_its_own_verdict_exit_code_and_sarif_rule(corpus, capsys):
    from labkit.supplychain import output

    path = corpus["unknown_bytes"][0]
    r = scan_file(path)
    assert r.verdict == "unverified" and r.flagged and not r.unreadable
    assert cli.main([str(path)]) == 3
    assert "1 only unverified" in capsys.readouterr().err
    assert cli.main([str(path), str(corpus["keras_lambda"][0])]) == 1   # a finding wins
    assert cli.main([str(path), str(path.parent / "missing")]) == 2     # unreadable wins
    capsys.readouterr()
    cli.main(["--format", "json", str(path)])
    assert json.loads(capsys.readouterr().out)["files"][0]["verdict"] == "unverified"
    doc = output.to_sarif([r])
    rules = [x["id"] for x in doc["runs"][0]["tool"]["driver"]["rules"]]
    assert "unverified" in rules
    assert doc["runs"][0]["results"][0]["ruleId"] == "unverified"


def test_the_repository_own_files_scan_clean():
    root = Path(__file__).resolve().parents[1]
    for name in ("pyproject.toml", "README.md"):
        assert scan_file(root / name).verdict == "clean", name


def test_gguf_reader_against_the_spec(corpus):
    info = formats.gguf_metadata(Blob(corpus["gguf_benign"][0].read_bytes()))
    assert info["version"] == 3 and info["n_tensors"] == 1
    assert info["metadata"]["general.architecture"] == "llama"
    assert info["metadata"]["tokenizer.ggml.tokens"] == ["<s>", "</s>", "hi"]
    assert info["metadata"]["tokenizer.chat_template"] == CHATML


def test_onnx_reader_finds_every_location(corpus):
    locs, graph = formats.onnx_external_locations(
        Blob(corpus["onnx_subgraph_external"][0].read_bytes()))
    assert graph and locs == ["../outside.bin"]


# --------------------------------------------------------------------------------------
# OmegaConf resolver spellings: the scanner and safe_instantiate share one check
# --------------------------------------------------------------------------------------

TRICKY = {
    "nested_name": {"k": "canary", "x": "${oc.${k}:1}"},
    "computed_name": {"r": "canary", "x": "${${r}:1}"},
    "double_backslash": {"x": "\\\\${canary:1}"},
    "escaped": {"x": "\\${canary:1}"},
    "in_argument": {"x": "${oc.select:${canary:1},0}"},
    "spaced": {"x": "${ canary :1}"},
}


@pytest.fixture
def canary_resolvers(tmp_path):
    from omegaconf import OmegaConf

    marker = tmp_path / "RESOLVED"

    def fire(*args):
        marker.write_text("fired")
        return "fired"

    for name in ("canary", "oc.canary"):
        OmegaConf.register_new_resolver(name, fire, replace=True)
    yield marker
    for name in ("canary", "oc.canary"):
        OmegaConf.clear_resolver(name)


def _resolve_twice(obj):
    from omegaconf import OmegaConf

    once = OmegaConf.to_container(OmegaConf.create(obj), resolve=True)
    return OmegaConf.to_container(OmegaConf.create(once), resolve=True)


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_resolver_spellings_are_real_and_refused(canary_resolvers, name):
    cfg = TRICKY[name]
    _resolve_twice(cfg)                      # the spelling does reach the resolver ...
    assert canary_resolvers.exists(), name
    canary_resolvers.unlink()
    with pytest.raises(BlockedTarget):       # ... and safe_instantiate refuses it
        safe_instantiate(cfg, allow=set())
    import yaml

    from labkit.supplychain.scanner import scan_bytes
    r = scan_bytes(yaml.safe_dump(cfg).encode())   # and the scanner flags it
    assert "resolver" in {f.kind for f in r.findings}, r.findings
    assert not canary_resolvers.exists()


def test_whatever_safe_instantiate_returns_resolves_without_running_code(canary_resolvers):
    """Every config that safe_instantiate lets through is resolved (twice, as a consumer
    re-reading it would) with the canary resolvers registered: nothing fires."""
    configs = [*TRICKY.values(),
               {"a": "${oc.env:HOME}", "b": "${a}", "c": ["${b}", "plain"]},
               {"m": {"lr": 0.1, "s": "${.lr}"}, "n": "$ {canary:1}", "o": "${oc.select:m.lr,1}"},
               {"note": "${not an interpolation"}]
    passed = 0
    for cfg in configs:
        try:
            out = safe_instantiate(cfg, allow=set())
        except BlockedTarget:
            continue
        passed += 1
        try:
            _resolve_twice(out)
        except Exception:  # noqa: BLE001 - a resolution error runs nothing; the canary says
            pass
        assert not canary_resolvers.exists(), cfg
    assert passed == 3

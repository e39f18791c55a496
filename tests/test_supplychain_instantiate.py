"""safe_instantiate and the config defence ladder."""

import functools
import sys

import pytest
import torch

from labkit.lessons import l06
from labkit.supplychain import payloads, zoo
from labkit.supplychain.loaders import BlockedTarget, read_config, safe_instantiate
from labkit.supplychain.payloads import ZOO_TARGETS

# configs whose victim reads them with read_config (the others need their own reader:
# every YAML document, libyaml, a header without a size limit)
MALICIOUS_CONFIGS = [n for n, b in payloads.MALICIOUS.items()
                     if b.spec[2] == "config" and b.spec[1] in ("config", "config_eval", "nemo")]


def test_builds_benign_configs(tmp_path):
    for name in ("yaml_allowed_targets", "safetensors_meta_allowed", "nemo_benign"):
        art = payloads.build(name, tmp_path, rng=0)
        built = safe_instantiate(read_config(art.path), allow=set(ZOO_TARGETS))
        model = built["model"] if "model" in built else built["config"]["model"]
        assert isinstance(model, zoo.TinyNet)
        assert model(torch.zeros(3, 4)).shape == (3, 2)
    art = payloads.build("yaml_allowed_targets", tmp_path / "again", rng=0)
    built = safe_instantiate(read_config(art.path), allow=set(ZOO_TARGETS))
    assert isinstance(built["schedule"], functools.partial)
    assert built["schedule"](0) == pytest.approx(1 / 3)


@pytest.mark.parametrize("name", MALICIOUS_CONFIGS)
def test_blocks_every_malicious_config_in_process(tmp_path, name):
    art = payloads.build(name, tmp_path, rng=0)
    cfg = read_config(art.path)  # parsing is safe: yaml.safe_load / json
    with pytest.raises(BlockedTarget):
        safe_instantiate(cfg, allow=set(ZOO_TARGETS))
    assert not art.marker.exists()


def test_yaml_python_tag_never_reaches_instantiate(tmp_path):
    art = payloads.build("yaml_python_tag", tmp_path, rng=0)
    import yaml

    with pytest.raises(yaml.constructor.ConstructorError):
        read_config(art.path)
    assert not art.marker.exists()


def test_aliases_and_reexports_are_blocked_even_when_listed(tmp_path):
    marker = tmp_path / "m"
    alias = {"_target_": "labkit.supplychain.zoo.open_file", "_args_": [str(marker), "w"]}
    with pytest.raises(BlockedTarget, match="io.open"):
        safe_instantiate(alias, allow={"labkit.supplychain.zoo.open_file"})
    reexport = {"_target_": "labkit.supplychain.zoo.pathlib.Path", "_args_": [str(marker)]}
    with pytest.raises(BlockedTarget, match="re-export or alias"):
        safe_instantiate(reexport, allow={"labkit.supplychain.zoo.pathlib.Path"})
    assert not marker.exists()


def test_mapping_pins_identity():
    cfg = {"_target_": "labkit.supplychain.zoo.TinyNet"}
    assert isinstance(safe_instantiate(cfg, allow={"labkit.supplychain.zoo.TinyNet": zoo.TinyNet}),
                      zoo.TinyNet)
    with pytest.raises(BlockedTarget, match="not the allow-listed object"):
        safe_instantiate(cfg, allow={"labkit.supplychain.zoo.TinyNet": torch.nn.Linear})
    # a public re-export is fine when the mapping pins the very object
    lin = {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}
    assert isinstance(safe_instantiate(lin, allow={"torch.nn.Linear": torch.nn.Linear}),
                      torch.nn.Linear)
    with pytest.raises(BlockedTarget):  # by name only, the real name must be listed too
        safe_instantiate(lin, allow={"torch.nn.Linear"})


@pytest.mark.parametrize("cfg", [
    {"_target_": "labkit.supplychain.zoo.TinyNet", "_convert_": "all"},
    {"_target_": "labkit.supplychain.zoo.TinyNet", "_recursive_": False},
    {"_target_": "labkit.supplychain.zoo.linear_warmup", "_partial_": "yes"},
    {"_target_": "labkit.supplychain.zoo.linear_warmup", "_args_": "0"},
    {"_partial_": True, "steps": 3},
    {"_target_": ["labkit.supplychain.zoo.TinyNet"]},
    {"_target_": "builtins.open", "_partial_": True, "file": "x"},
    {"a": object()},
    {1: "non-string key"},
])
def test_fails_closed_on_anything_unusual(cfg):
    with pytest.raises(BlockedTarget):
        safe_instantiate(cfg, allow=set(ZOO_TARGETS))


def test_unlisted_names_are_never_imported():
    """In a fresh interpreter (other tests import matplotlib, which imports colorsys)."""
    import subprocess

    code = ("import sys\n"
            "from labkit.supplychain import BlockedTarget, ZOO_TARGETS, safe_instantiate\n"
            "assert 'colorsys' not in sys.modules\n"
            "try:\n"
            "    safe_instantiate({'_target_': 'colorsys.rgb_to_hsv', '_args_': [0, 0, 0]}, allow=set(ZOO_TARGETS))\n"
            "except BlockedTarget:\n"
            "    print('blocked')\n"
            "assert 'colorsys' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "blocked", out.stderr


def test_input_not_mutated_and_omegaconf_accepted():
    from omegaconf import OmegaConf

    cfg = {"m": {"_target_": "labkit.supplychain.zoo.TinyNet", "hidden": 3}, "n": [1, "${x}"]}
    snapshot = repr(cfg)
    out = safe_instantiate(cfg, allow=set(ZOO_TARGETS))
    assert repr(cfg) == snapshot and out["n"] == [1, "${x}"]
    out = safe_instantiate(OmegaConf.create(cfg), allow=set(ZOO_TARGETS))
    assert out["m"].fc1.out_features == 3 and out["n"] == [1, "${x}"]


def test_allow_must_be_names():
    with pytest.raises(TypeError):
        safe_instantiate({}, allow="labkit.supplychain.zoo.TinyNet")


def test_defence_ladder(tmp_path):
    t = l06.ladder(tmp_path, rng=0)
    assert [list(r.values()) for r in t.rows] == [
        ["yaml_allowed_targets", "loaded", "loaded", "loaded"],
        ["os_system", "blocked", "blocked", "blocked"],
        ["yaml_target_open", "FIRED", "blocked", "blocked"],
        ["reexport_target", "FIRED", "FIRED", "blocked"],
        ["alias_target", "FIRED", "FIRED", "blocked"],
    ]

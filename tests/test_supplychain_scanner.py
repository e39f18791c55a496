"""Unit and oracle tests for the static scanner."""

import io
import pickle
import struct
import tarfile
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from labkit.supplychain import payloads, scanner
from labkit.supplychain.scanner import DEFAULT_ALLOW, find_targets, scan_bytes, scan_file


def kinds(report):
    return sorted({f.kind for f in report.findings})


def test_default_allow_is_torch_weights_only_plus_numpy():
    from torch import _weights_only_unpickler as wo

    torch_names = set(wo._get_allowed_globals())
    assert torch_names <= DEFAULT_ALLOW
    extra = DEFAULT_ALLOW - torch_names
    assert extra and all(n.startswith("numpy.") for n in extra)


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4, 5])
def test_globals_match_pickletools_on_ordinary_pickles(proto):
    obj = {"od": OrderedDict(a=1), "arr": np.arange(3), "s": {1, 2}, "c": 1j}
    data = pickle.dumps(obj, protocol=proto)
    oracle = []

    class Recorder(pickle.Unpickler):  # the real unpickler says what it imports
        def find_class(self, module, name):
            obj = super().find_class(module, name)
            oracle.append(f"{obj.__module__}.{obj.__qualname__}" if module == "__builtin__"
                          else f"{module}.{name}")
            return obj

    Recorder(io.BytesIO(data)).load()  # our own benign pickle: safe to load
    assert scanner.pickle_globals(data) == oracle
    assert scan_bytes(data).verdict == "clean"


def test_memo_and_dup_cannot_hide_a_name(tmp_path):
    data = payloads._memo_get_pickle(tmp_path / "m")
    assert scanner.pickle_globals(data) == ["builtins.open"]
    data = payloads._dup_pickle(tmp_path / "m")
    assert scanner.pickle_globals(data) == ["builtins.open"]


def test_computed_stack_global_name_is_a_finding():
    # module name comes from a call result, not a literal: cannot be known statically
    data = (b"\x80\x04" b"\x8c\x08builtins\x8c\x03str\x93" b")R"  # str() -> ''
            b"\x8c\x04open\x93" b"N." )
    r = scan_bytes(data)
    assert "unknown-global" in kinds(r)
    assert "global" in kinds(r)  # builtins.str itself is not allowed either


def test_bytes_after_stop_and_stacked_pickles():
    clean = pickle.dumps([1, 2], protocol=2)
    assert scan_bytes(clean).verdict == "clean"
    # garbage after STOP: a second load would fail before importing anything
    assert scan_bytes(clean + b"garbage").verdict == "clean"
    bad = pickle.dumps(OrderedDict(), protocol=2) + pickle.dumps(payloads.OpenCanary("/x"), protocol=2)
    r = scan_bytes(clean + bad)
    assert kinds(r) == ["global"]
    assert all(f.offset > len(clean) for f in r.findings)  # in the stacked pickles
    assert any("io.open" in f.detail for f in r.findings)


def test_malformed_pickle_is_a_finding():
    data = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)
    r = scan_bytes(data[:-5])
    assert r.verdict == "flagged" and "malformed-pickle" in kinds(r)


def test_ext_opcode_is_a_finding():
    assert "extension" in kinds(scan_bytes(b"\x80\x02\x82\x01N."))  # EXT1 1


def test_format_is_recognised_by_content_not_name(tmp_path):
    art = payloads.build("raw_pickle_p4", tmp_path, rng=0)
    data = art.path.read_bytes()
    for name in ("model.safetensors", "README.md", "config.yaml", "noext"):
        p = tmp_path / name
        p.write_bytes(data)
        assert scan_file(p).verdict == "flagged"
    ok = payloads.build("state_dict", tmp_path, rng=0)
    p = tmp_path / "picture.jpg"
    p.write_bytes(ok.path.read_bytes())
    assert scan_file(p).verdict == "clean"


def test_every_zip_member_is_read_whatever_its_name(tmp_path):
    bad = pickle.dumps(payloads.OpenCanary(tmp_path / "m"), protocol=4)
    p = tmp_path / "a.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("docs/LICENSE.txt", bad)
        zf.writestr("weights.npy", b"\x93NUMPY\x01\x00v\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }".ljust(118) + b"\n")
    r = scan_file(p)
    assert [f.member for f in r.findings if f.kind == "global"] == ["docs/LICENSE.txt"]


def test_corrupt_zip_member_is_a_finding(tmp_path):
    art = payloads.build("state_dict", tmp_path, rng=0)
    data = bytearray(art.path.read_bytes())
    with zipfile.ZipFile(art.path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data/0"))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 1] ^= 0xFF  # one byte of a tensor
    p = tmp_path / "corrupt.pt"
    p.write_bytes(bytes(data))
    r = scan_file(p)
    assert "unreadable-member" in kinds(r)


def test_tar_links_and_truncation_are_findings(tmp_path):
    p = tmp_path / "links.tar"
    with tarfile.open(p, "w") as tf:
        info = tarfile.TarInfo("model_weights.ckpt")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    assert "unreadable-member" in kinds(scan_file(p))
    art = payloads.build("nemo_yaml", tmp_path, rng=0)
    data = art.path.read_bytes()
    q = tmp_path / "cut.nemo"
    q.write_bytes(data[: len(data) // 2])
    assert scan_file(q).verdict == "flagged"


def test_unreadable_input(tmp_path):
    r = scan_file(tmp_path / "missing.pt")
    assert r.verdict == "unreadable" and r.unreadable


def test_scanning_does_not_modify_the_file(tmp_path):
    art = payloads.build("nemo_ckpt", tmp_path, rng=0)
    before = art.path.read_bytes()
    scan_file(art.path)
    assert art.path.read_bytes() == before
    assert not art.marker.exists()


def test_find_targets_hand_worked():
    cfg = {"a": {"_target_": "x.Y", "b": [{"_target_": "z.W"}]},
           "meta": '{"_target_": "in.json"}', "lit": "{'_target_': 'in.literal'}",
           "yml": "k:\n  _target_: in.yaml\n"}
    assert find_targets(cfg) == [("a._target_", "x.Y"), ("a.b[0]._target_", "z.W"),
                                 ("lit<parsed>._target_", "in.literal"),
                                 ("meta<parsed>._target_", "in.json"),
                                 ("yml<parsed>.k._target_", "in.yaml")]


def test_yaml_anchors_tags_and_duplicate_json_keys():
    text = "base: &b\n  _target_: builtins.open\nmodel: *b\n"
    r = scan_bytes(text.encode())
    assert [f.kind for f in r.findings] == ["target"]  # the shared node is reported once
    r = scan_bytes(b"x: !!python/name:os.system ''\n")
    assert kinds(r) == ["yaml-python-tag"]
    r = scan_bytes(b'{"_target_": "builtins.open", "_target_": "labkit.supplychain.zoo.TinyNet"}',
                   allow=["labkit.supplychain.zoo.TinyNet"])
    assert any("builtins.open" in f.detail for f in r.findings)


def test_allow_is_exact_not_prefix():
    cfg = b"m:\n  _target_: labkit.supplychain.zoo.TinyNet\n"
    assert scan_bytes(cfg).verdict == "flagged"
    assert scan_bytes(cfg, allow=["labkit.supplychain.zoo.TinyNet"]).verdict == "clean"
    assert scan_bytes(cfg, allow=["labkit.supplychain.zoo"]).verdict == "flagged"
    assert scan_bytes(cfg, allow=["labkit.supplychain.zoo.*"]).verdict == "flagged"


def test_safetensors_metadata_literal_is_found(tmp_path):
    art = payloads.build("safetensors_meta_literal", tmp_path, rng=0)
    r = scan_file(art.path)
    assert r.formats == ("-=safetensors",)
    assert [f.kind for f in r.findings] == ["target"]


def test_text_that_starts_with_opcodes_is_not_a_pickle():
    # each fails in the unpickler before any import: "hannels: 3" cannot name a module
    for text in (b"channels: 3\nlr: 0.1\n", b"little", b"3\n", b"1", b"(draft)\n",
                 b"# title\n", b"]\n", b"c\n\n"):
        assert scan_bytes(text).verdict == "clean", text


def test_text_that_imports_a_module_is_flagged():
    # pickle.load(b"cat\ndog\n") runs `import at` before it fails: importing runs code
    r = scan_bytes(b"cat\ndog\nbird\n")
    assert [(f.kind, f.detail) for f in r.findings] == [("global", "imports at.dog (byte 0)")]


def test_identifier_global_in_text_is_flagged():
    assert scan_bytes(b"cos\nsystem\n(S'true'\ntR.").verdict == "flagged"


def test_npy_object_array_is_walked():
    buf = io.BytesIO()
    np.save(buf, np.array([1, "a"], dtype=object), allow_pickle=True)
    r = scan_bytes(buf.getvalue())
    assert r.verdict == "clean"  # only numpy's own globals and builtins str/int objects
    buf = io.BytesIO()
    arr = np.empty(1, dtype=object)
    arr[0] = payloads.OpenCanary("/nonexistent/x")
    np.save(buf, arr, allow_pickle=True)
    assert "global" in kinds(scan_bytes(buf.getvalue()))


def test_limits_fail_closed():
    nested = pickle.dumps(None, protocol=4)
    for _ in range(12):  # pickles nested inside bytes, deeper than the scanner follows
        nested = pickle.dumps(nested, protocol=4)
    r = scan_bytes(nested)
    assert kinds(r) == ["budget"]
    assert scan_bytes(pickle.dumps(pickle.dumps(None, protocol=4), protocol=4)).verdict == "clean"


def test_report_repr_is_one_line(tmp_path):
    r = scan_bytes(b"N.", name="x")
    assert repr(r) == "ScanReport(path='x', verdict='clean', findings=0)"
    assert "\n" not in repr(r)

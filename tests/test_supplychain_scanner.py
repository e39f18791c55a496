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


def test_default_allow_is_torch_weights_only_plus_numpy_and_joblib_arrays():
    from torch import _weights_only_unpickler as wo

    torch_names = set(wo._get_allowed_globals())
    assert torch_names <= DEFAULT_ALLOW
    extra = DEFAULT_ALLOW - torch_names - {"joblib.numpy_pickle.NumpyArrayWrapper"}
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


# --------------------------------------------------------------------------------------
# Issue 25: regressions, each a harmless canary built at test time. Where the real loader
# installs here, the file is proven to fire the canary in the sandboxed subprocess.
# --------------------------------------------------------------------------------------

REGRESSIONS = [
    # (name, technique, source, loader that fires it here or None: built from the spec)
    ("build_none_state", "BUILD with a None state on an object without __setstate__, "
     "then the payload", "issue 25 (unpickler model); Hide and Seek, arXiv 2508.19774", "pickle"),
    ("setitem_bytearray", "SETITEM on a bytearray (an in-place op, not a dict), then the "
     "payload", "issue 25; CVE-2026-24747 (SETITEM on non-dicts)", "pickle"),
    ("appends_bytearray", "APPENDS on a bytearray (bytearray.extend), then the payload",
     "issue 25; CVE-2026-24747", "pickle"),
    ("memo_across_streams", "a second pickle after STOP whose MEMOIZE indices restart: "
     "a model that keeps the first memo reads the decoy collections.OrderedDict",
     "issue 25 (a second stream after a header); picklescan CVE-2025-10155/6/7", "pickle_stream"),
    ("ext_no_header", "protocol-1 stream (no header) with an EXT1 code", "issue 25 "
     "(extension codes); Python docs, copyreg.add_extension", None),
    ("odd_module_name", "STACK_GLOBAL of a module whose name is not an identifier "
     "('my-helper', importable from a file shipped next to the model)", "issue 25", None),
    ("setitems_on_tensor", "SETITEMS on an object made by an allowed torch name",
     "CVE-2026-24747 (torch weights_only unpickler)", None),
    ("zip_case_variant", "torch zip whose pickle is archive/DATA.PKL without a PROTO "
     "opcode (BINPERSID before the payload)", "issue 25 (containers); miniz case-insensitive look-up", "torch"),
    ("legacy_tar_pickle", "torch legacy tar layout (sys_info, pickle, storages, tensors), "
     "payload in 'pickle'", "issue 25; torch.serialization.legacy_load", "torch"),
    ("legacy_tar_storages", "torch legacy tar, payload in a 'storages' record",
     "issue 25; torch.serialization.legacy_load", "torch"),
    ("zip_stray_local_header", "a local file header no central-directory entry points "
     "at (concatenated archives)", "issue 25; PKWARE APPNOTE 4.3", None),
    ("zip64_disagrees", "zip64 end record and classic end record name different "
     "central directories", "issue 25; PKWARE APPNOTE 4.3.14-16", None),
    ("nemo_path_escape", ".nemo tar whose member path is ../model_config.yaml",
     "issue 25; CVE-2007-4559 (tarfile path traversal)", None),
    ("zstd_pickle", "a zstd frame (magic 28 B5 2F FD) around a pickle: without a zstd "
     "reader a finding, never clean", "issue 25 (wrappers)", None),
    ("sqlite_cache", "a SQLite cache whose BLOB row is a pickle (diskcache-style)",
     "issue 25 (wrappers)", "pickle"),
]


def _p(marker) -> bytes:
    """``open(marker, "w")``, protocol 2, without PROTO (appended to other opcodes)."""
    return pickle.dumps(payloads.OpenCanary(marker), protocol=2)[2:]


def _legacy_tar(path, members: dict) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def _build_regression(name: str, folder, marker):
    """Build one regression file; returns (path, bytes the loader fires on or None)."""
    folder.mkdir()
    p = folder / f"{name}.bin"
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    # no protocol header (PROTO is optional), so a model that stops early says nothing
    bytearray8 = b"\x96\x02\x00\x00\x00\x00\x00\x00\x00ab"
    if name == "build_none_state":
        p.write_bytes(b"]Nb0" + _p(marker))  # list has no __setstate__: a no-op
    elif name == "setitem_bytearray":
        p.write_bytes(bytearray8 + b"K\x00K\x41s0" + _p(marker))
    elif name == "appends_bytearray":
        p.write_bytes(bytearray8 + b"(K\x41K\x42e0" + _p(marker))
    elif name == "memo_across_streams":
        decoy = b"\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93)R."
        m = str(marker).encode()
        payload = (b"\x80\x04\x8c\x08builtins\x94\x8c\x04open\x94h\x00h\x01\x93"
                   b"\x8c" + bytes([len(m)]) + m + b"\x8c\x01w\x86R.")
        p.write_bytes(decoy + payload)
    elif name == "ext_no_header":
        p.write_bytes(b"\x82\x01)R.")
    elif name == "odd_module_name":
        p.write_bytes(b"\x8c\tmy-helper\x8c\x03run\x93)R.")
    elif name == "setitems_on_tensor":
        p.write_bytes(b"\x80\x02ctorch\nFloatTensor\n)R(K\x00K\x01u.")
    elif name == "zip_case_variant":
        src = folder / "src.pt"
        payloads.poisoned_checkpoint(src, marker)
        p = folder / "case.pt"
        with zipfile.ZipFile(src) as zi, zipfile.ZipFile(p, "w") as zo:
            for i in zi.infolist():
                data = zi.read(i)
                if i.filename.endswith("data.pkl"):  # headerless: PROTO is optional
                    zo.writestr(i.filename.replace("data.pkl", "DATA.PKL"), data[2:])
                else:
                    zo.writestr(i.filename, data)
        src.unlink()
    elif name == "legacy_tar_pickle":
        p = folder / "legacy.pt"
        _legacy_tar(p, {"sys_info": sys_info, "pickle": pickle.dumps(
            payloads.OpenCanary(marker), protocol=2), "storages": pickle.dumps(0, protocol=2)
            + pickle.dumps([], protocol=2), "tensors": pickle.dumps(0, protocol=2)})
    elif name == "legacy_tar_storages":
        p = folder / "legacy.pt"
        _legacy_tar(p, {"sys_info": sys_info, "pickle": pickle.dumps({}, protocol=2),
                        "storages": pickle.dumps(1, protocol=2) + pickle.dumps(
                            payloads.OpenCanary(marker), protocol=2),
                        "tensors": pickle.dumps(0, protocol=2)})
    elif name == "zip_stray_local_header":
        hidden = io.BytesIO()
        with zipfile.ZipFile(hidden, "w") as zf:
            zf.writestr("data.pkl", pickle.dumps(payloads.OpenCanary(marker), protocol=4))
        shown = io.BytesIO()
        shown.write(b"PK\x03\x04" + bytes(26))  # starts like a zip, as torch checks
        shown.write(hidden.getvalue()[:hidden.getvalue().find(b"PK\x01\x02")])
        with zipfile.ZipFile(shown, "a") as zf:
            zf.writestr("version", b"3\n")
        p.write_bytes(shown.getvalue())
    elif name == "zip64_disagrees":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("a.txt", b"hello")
        data = buf.getvalue()
        eocd = data.rfind(b"PK\x05\x06")
        cd_size, cd_off = struct.unpack("<II", data[eocd + 12:eocd + 20])
        z64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, cd_size, cd_off)
        loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
        classic = bytearray(data[eocd:])
        classic[16:20] = struct.pack("<I", cd_off + len(z64) + len(loc) + 7)  # disagrees
        p.write_bytes(data[:eocd] + z64 + loc + bytes(classic))
    elif name == "nemo_path_escape":
        p = folder / "model.nemo"
        _legacy_tar(p, {"../model_config.yaml": b"name: tiny\n"})
    elif name == "zstd_pickle":
        p.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(12))
    elif name == "sqlite_cache":
        import sqlite3

        p = folder / "cache.db"
        blob = pickle.dumps(payloads.OpenCanary(marker), protocol=4)
        con = sqlite3.connect(p)
        con.execute("CREATE TABLE Cache (key TEXT, value BLOB)")
        con.execute("INSERT INTO Cache VALUES (?, ?)", ("model", blob))
        con.commit()
        con.close()
        cell = folder / "cell.pkl"  # what the cache's get() unpickles
        cell.write_bytes(blob)
        return p, cell
    return p, None


@pytest.fixture(scope="module")
def regressions(tmp_path_factory):
    root = tmp_path_factory.mktemp("issue25")
    built = {}
    for name, _, _, _ in REGRESSIONS:
        marker = root / name / f"CANARY-{name}"
        built[name] = (*_build_regression(name, root / name, marker), marker)
    return root, built


def test_issue25_regressions_are_flagged_and_scanning_fires_nothing(regressions):
    root, built = regressions
    for name, technique, source, _ in REGRESSIONS:
        path, _, marker = built[name]
        r = scan_file(path)
        assert r.verdict == "flagged", (name, technique, source, r.findings)
        assert not marker.exists()


def test_issue25_regressions_fire_with_their_real_loader(regressions, monkeypatch):
    from labkit.supplychain import loaders

    root, built = regressions
    # torch's legacy tar reader extracts to a temp dir: one the sandbox lets it write to
    monkeypatch.setenv("TMPDIR", str(built["legacy_tar_pickle"][0].parent))
    items = []
    for name, _, _, loader in REGRESSIONS:
        if loader is not None:
            path, cell, marker = built[name]
            items.append((name, cell or path, loader, marker))
    outs = loaders.load_in_subprocess(items)
    assert [o.name for o in outs if not o.fired] == []


def test_issue25_findings_name_the_family(regressions):
    _, built = regressions
    expect = {"build_none_state": "global", "setitem_bytearray": "global",
              "appends_bytearray": "global", "zip_case_variant": "global",
              "memo_across_streams": "global", "ext_no_header": "extension",
              "odd_module_name": "global", "setitems_on_tensor": "method-call",
              "zip_stray_local_header": "ambiguous-container",
              "zip64_disagrees": "ambiguous-container", "nemo_path_escape": "path-escape",
              "zstd_pickle": "unreadable-member"}
    for name, kind in expect.items():
        kinds_found = {f.kind for f in scan_file(built[name][0]).findings}
        assert kind in kinds_found, (name, kinds_found)
    r = scan_file(built["memo_across_streams"][0])
    assert any("builtins.open" in f.detail for f in r.findings)
    r = scan_file(built["sqlite_cache"][0])
    assert any("Cache[0].value" in f.member and f.kind == "global" for f in r.findings)


def test_benign_stacked_pickles_and_trailing_junk():
    clean = pickle.dumps([1, 2], protocol=2)
    assert scan_bytes(clean + b"\x00garbage").verdict == "clean"  # fails at once: runs nothing
    assert "malformed-pickle" in kinds(scan_bytes(clean + b"(N\x00"))  # runs, then breaks
    assert scan_bytes(clean + pickle.dumps({"a": [1]}, protocol=4)).verdict == "clean"

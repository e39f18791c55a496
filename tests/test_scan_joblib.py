"""joblib files: the array data joblib's loader reads from inside the pickle stream.

``joblib.dump`` writes each numpy array as a ``NumpyArrayWrapper`` whose ``BUILD`` is
followed by the raw array bytes (or, for object arrays, a nested pickle); the pickle goes
on after them. The scanner follows that layout as ``NumpyUnpickler`` reads it, so plain
arrays and estimators scan clean (with their classes allowed) and a payload placed after,
between or inside arrays is still found. Each malicious file is proven to fire with
``joblib.load`` in the sandboxed subprocess.
"""

import io
import struct

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder

from labkit.supplychain.loaders import load_in_subprocess
from labkit.supplychain.payloads import OpenCanary
from labkit.supplychain.scanner import scan_file

ARRAYS = {
    "float64": np.arange(10.0),
    "float32_fortran": np.asfortranarray(np.ones((3, 4), dtype=np.float32)),
    "complex": np.ones(3, complex),
    "bool": np.ones(5, bool),
    "unicode": np.array(["ab", "c"]),
    "bytes": np.array([b"ab", b"c"]),
    "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
    "object": np.array(["a", None, 3], dtype=object),
    "zero_d": np.array(3.5),
    "empty": np.zeros((0, 3)),
    "big_endian": np.arange(4, dtype=">i4"),
    "datetime": np.array(["2020-01-01"], dtype="M8[D]"),
    "several": {"a": np.arange(5), "b": [np.ones(2), np.zeros(3, np.int8)], "c": "text"},
}


def _dump(obj, path, **kw):
    joblib.dump(obj, path, **kw)
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("compress", [0, 3])
@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_plain_arrays_scan_clean(tmp_path, name, protocol, compress):
    p = _dump(ARRAYS[name], tmp_path / "a.joblib", protocol=protocol, compress=compress)
    r = scan_file(p)
    assert r.verdict == "clean", r.findings


def test_estimators_scan_clean_once_their_classes_are_allowed(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    lr = _dump(LogisticRegression().fit(X, y), tmp_path / "lr.joblib")
    le = _dump(LabelEncoder().fit(["x", "y", "z"]), tmp_path / "le.joblib")  # object array
    names = {"sklearn.linear_model._logistic.LogisticRegression",
             "sklearn.preprocessing._label.LabelEncoder"}
    before = {f.detail.split()[1] for p in (lr, le) for f in scan_file(p).findings
              if f.kind == "global"}
    assert before == names          # only the estimators' own classes, no unmodelled part
    assert scan_file(lr, allow=names).verdict == "clean"
    assert scan_file(le, allow=names).verdict == "clean"


def _malicious(tmp_path):
    """name -> (path, marker): payloads after, between and inside arrays."""
    out = {}
    for name, obj_of in {
        "after_arrays": lambda m: {"w": np.arange(50.0), "b": np.ones(3), "hook": OpenCanary(m)},
        "between_arrays": lambda m: [np.arange(7, dtype=np.int16), OpenCanary(m), np.ones(2)],
        "inside_object_array": lambda m: {"w": np.array([1, OpenCanary(m)], dtype=object)},
    }.items():
        d = tmp_path / name
        d.mkdir()
        marker = d / "CANARY"
        out[name] = (_dump(obj_of(marker), d / "m.joblib"), marker)
    # an empty array, protocol 2 (no frames): the payload starts right after the padding
    d = tmp_path / "empty_array_then_payload"
    d.mkdir()
    marker = d / "CANARY"
    buf = io.BytesIO()
    joblib.dump({"w": np.zeros(0), "hook": OpenCanary(marker)}, buf, protocol=2)
    out["empty_array_then_payload"] = (d / "m.joblib", marker)
    (d / "m.joblib").write_bytes(buf.getvalue())
    return out


def test_payloads_around_arrays_are_flagged_and_fire_with_joblib(tmp_path):
    files = _malicious(tmp_path)
    for name, (path, marker) in files.items():
        r = scan_file(path)
        assert any(f.kind == "global" and ".open " in f.detail for f in r.findings), \
            (name, r.findings)
        assert not marker.exists()
    out = load_in_subprocess([(n, p, "joblib", m) for n, (p, m) in files.items()])
    assert {o.name: o.verdict for o in out} == {n: "FIRED" for n in files}


def _frame_spanning_build(tmp_path):
    """A protocol-4 joblib file whose first frame is stretched past the wrapper's BUILD:
    joblib reads the array data from the file after the frame, the unpickler the bytes
    left in the frame. The scanner does not guess which: a finding."""
    p = _dump({"w": np.arange(4.0)}, tmp_path / "f.joblib", protocol=4)
    data = bytearray(p.read_bytes())
    assert data[2] == 0x95
    n = struct.unpack("<Q", data[3:11])[0]
    data[3:11] = struct.pack("<Q", n + 8)
    p.write_bytes(bytes(data))
    return p


def test_odd_layouts_are_findings_not_clean(tmp_path):
    r = scan_file(_frame_spanning_build(tmp_path))
    assert r.verdict == "flagged"
    assert [f.kind for f in r.findings if "inside a pickle frame" in f.detail] == ["unmodelled"]
    p = _dump({"w": np.arange(100.0)}, tmp_path / "t.joblib")
    p.write_bytes(p.read_bytes()[:-200])       # array data cut short
    r = scan_file(p)
    assert [(f.kind, f.detail.split(" (")[0]) for f in r.findings] == [
        ("malformed-pickle", "ran out of input in array data")]


def test_item_size_follows_numpy_not_the_stated_elsize():
    """numpy ignores a fixed-size dtype's ``elsize`` in its pickled state (an 'f4' stays 4
    bytes) but takes it for strings and records: the scanner must skip exactly what joblib
    reads, or a payload could hide in bytes the scanner skipped."""
    from labkit.supplychain.pickle_machine import _itemsize, _Obj

    for code, elsize in (("f4", 8), ("U2", 40), ("S2", 7), ("V4", 9), ("<i8", -1)):
        state = (3, "<", None, None, None, elsize, 4, 0)
        d = np.dtype(code)
        d.__setstate__(state)
        assert _itemsize(_Obj("numpy.dtype", [code, state])) == d.itemsize, code
    assert _itemsize(_Obj("numpy.dtype", ["U2", None])) is None     # flexible, no state

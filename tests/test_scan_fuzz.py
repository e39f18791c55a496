"""Hypothesis fuzzing of every format parser of the scanner: no crash (only findings and
reports come out) and no hang (the pickle machine's op counter never exceeds the bytes it
read, so its work is bounded by the input)."""

import io
import json
import struct
import tarfile
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.supplychain.blob import Blob
from labkit.supplychain.pickle_machine import OPNAMES, PickleRun, run_pickle
from labkit.supplychain.scanner import ScanReport, scan_bytes

FAST = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
KINDS_OK = {"clean", "flagged", "unverified"}  # unverified: bytes in no format the scanner reads


def check_verdict(data: bytes) -> str:
    r = scan_bytes(data, name="fuzz")
    assert isinstance(r, ScanReport)
    assert r.verdict in KINDS_OK
    return r.verdict


OPCODE_BYTES = [bytes([c]) for c in range(256)]


@FAST
@given(st.lists(st.one_of(st.sampled_from(OPCODE_BYTES), st.binary(max_size=12),
                          st.sampled_from([b"\n", b"cbuiltins\nopen\n", b"\x8c\x08builtins",
                                           b"\x93", b"(", b"R", b"."])), max_size=60))
def test_pickle_machine_never_crashes_and_stays_linear(parts):
    data = b"".join(parts)
    run = run_pickle(Blob(data))
    assert isinstance(run, PickleRun)
    assert run.ops <= len(data) and run.end <= len(data)
    assert all(0 <= pos < max(1, len(data)) for _, pos in run.imports)
    check_verdict(data)


def _zip(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


MEMBERS = st.dictionaries(st.text("abcxyz./", min_size=1, max_size=8),
                          st.binary(max_size=200), min_size=1, max_size=3)


def _mutate(data: bytes, flips, cut: float) -> bytes:
    out = bytearray(data)
    for where, value in flips:
        out[int(where * (len(out) - 1))] = value
    return bytes(out[: max(1, int(len(out) * cut))])


FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6)


@FAST
@given(MEMBERS, FLIPS, st.floats(0.1, 1.0), st.binary(max_size=40))
def test_zip_reading(members, flips, cut, prefix):
    check_verdict(prefix + _mutate(_zip(members), flips, cut))


@FAST
@given(MEMBERS, FLIPS, st.floats(0.1, 1.0))
def test_tar_reading(members, flips, cut):
    check_verdict(_mutate(_tar(members), flips, cut))


@FAST
@given(st.sampled_from(["'<f4'", "'|O'", "'object'", "[('a', '<i2')]", "'xx'", "{", "'O8'"]),
       st.text(max_size=30), st.binary(max_size=100), st.sampled_from([1, 2, 3]))
def test_npy_reading(descr, junk, body, major):
    header = (f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}" + junk).encode(
        "utf-8", "surrogatepass") + b"\n"
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    check_verdict(b"\x93NUMPY" + bytes([major, 0]) + size + header + body)


@FAST
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                    lambda c: st.one_of(st.lists(c, max_size=3),
                                        st.dictionaries(st.text(max_size=8), c, max_size=3)),
                    max_leaves=12),
       st.integers(-3, 3), st.binary(max_size=30))
def test_safetensors_reading(meta, skew, tail):
    header = json.dumps({"__metadata__": meta}).encode()
    check_verdict(struct.pack("<Q", max(0, len(header) + skew)) + header + tail)


CONFIG_TEXT = st.text(alphabet=st.sampled_from(list("ab_:-[]{}#!&*${}.=\"' \n\t0123456789")),
                      max_size=120)


@FAST
@given(CONFIG_TEXT, st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))
def test_config_readings(text, encoding):
    check_verdict(text.encode(encoding, "surrogatepass"))


@FAST
@given(st.integers(1, 3000), st.sampled_from(["[", "{a: ", "- "]))
def test_deep_nesting_is_a_finding_or_clean_never_a_crash(depth, opener):
    if opener == "- ":
        text = "".join("  " * i + "- \n" for i in range(min(depth, 400))) + "  " * 400 + "x\n"
    else:
        text = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    check_verdict(text.encode())


def test_compressed_wrappers_never_crash():
    import bz2
    import gzip
    import lzma
    import zlib

    inner = b"\x80\x04N."
    for blob in (gzip.compress(inner), bz2.compress(inner), lzma.compress(inner),
                 lzma.compress(inner, format=lzma.FORMAT_ALONE), zlib.compress(inner)):
        assert check_verdict(blob) == "clean"
        for cut in (1, len(blob) // 2, len(blob) - 1):
            assert check_verdict(blob[:cut]) in KINDS_OK

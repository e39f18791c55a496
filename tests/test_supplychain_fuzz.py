"""Fuzz the scanner: random and mutated bytes never crash it and always get a verdict."""

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.supplychain import payloads
from labkit.supplychain.scanner import ScanReport, scan_bytes

N_EXAMPLES = 250  # per hypothesis test; two tests -> 500 inputs


@functools.lru_cache(maxsize=1)
def seeds() -> tuple[bytes, ...]:
    import tempfile

    names = ["torch_reduce", "raw_pickle_p0", "pickle_memo_get", "npz_odd_member",
             "nemo_yaml", "safetensors_meta_literal", "json_hf_config", "yaml_python_tag",
             "state_dict", "npy_float", "safetensors_plain", "nemo_benign"]
    with tempfile.TemporaryDirectory(prefix="labkit-fuzz-") as root:
        return tuple(payloads.build(n, root, rng=0).path.read_bytes() for n in names)


def check_verdict(data: bytes) -> None:
    """Scanning never crashes and always returns a verdict."""
    r = scan_bytes(data, name="fuzz")
    assert isinstance(r, ScanReport)
    assert r.verdict in ("clean", "flagged", "unverified")


@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=4096),
                 st.builds(lambda p, b: p + b, st.sampled_from(
                     [b"\x80\x04", b"\x80\x02", b"PK\x03\x04", b"\x1f\x8b", b"\x93NUMPY",
                      b"c", b"(", b"{", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
                     st.binary(max_size=2048))))
def test_random_bytes(data):
    check_verdict(data)


@settings(max_examples=N_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 11), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                    min_size=1, max_size=8),
       st.floats(0.05, 1.0))
def test_mutated_corpus(i, flips, cut):
    data = bytearray(seeds()[i])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    check_verdict(bytes(data[: max(1, int(len(data) * cut))]))


# Container and memo opcodes only (no GLOBAL): safe to hand to the real unpickler.
_SAFE_OPS = [b"(", b"0", b"1", b"2", b"]", b"}", b")", b"N", b"K\x01", b"K\x02", b"q\x00",
             b"q\x01", b"h\x00", b"h\x01", b"\x94", b"a", b"e", b"s", b"u", b"t", b"\x85",
             b"\x86", b"\x87", b"l", b"d", b"\x8f", b"\x90", b"\x91", b"\x88", b"\x89",
             b"\x8c\x01a"]


def _cpython_accepts(data: bytes) -> bool:
    import pickle

    try:
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - any rejection by the real unpickler
        return False
    return True


def test_walker_is_never_stricter_than_the_real_unpickler():
    """Differential oracle over 20,000 seeded random opcode strings: whatever CPython's
    unpickler accepts, the stack model accepts too (a stricter model would let a
    header-less payload pass as "not a pickle")."""
    import random

    from labkit.supplychain.blob import Blob
    from labkit.supplychain.pickle_machine import run_pickle

    rng = random.Random(0)
    streams = [b"".join(rng.choice(_SAFE_OPS) for _ in range(rng.randint(1, 10))) + b"."
               for _ in range(20_000)]
    accepted = [d for d in streams if _cpython_accepts(d)]
    stricter = [d for d in accepted if run_pickle(Blob(d), follow=False).error is not None]
    assert len(accepted) > 1000
    assert stricter == []

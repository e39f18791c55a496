"""Differential test of the unpickler model against CPython's own unpicklers.

Hypothesis generates opcode streams from a small grammar (containers, memo, BUILD, the
container-filling opcodes on every kind of target, GLOBAL/STACK_GLOBAL/INST/EXT with
harmless names, odd module names). Each stream is loaded by the real unpickler (the C
``_pickle.Unpickler`` that ``pickle.load``, ``torch.load`` and ``numpy.load`` run, and
the pure-Python ``pickle._Unpickler``) with a ``find_class`` that records every name it
resolves and only ever resolves a few harmless builtins (anything else raises as a
missing module would): nothing the streams can reach writes, reads or runs anything.

Properties (the issue's "fail closed for real"):

* a stream the real unpickler accepts never stops the model without a finding;
* every name the real unpickler resolves is among the model's imports (or the model
  reports a computed name / an extension code there, which is always a finding).

See Also
--------
labkit.supplychain.pickle_machine
"""

import copyreg
import io
import pickle
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.supplychain.blob import Blob
from labkit.supplychain.pickle_machine import run_pickle
from labkit.supplychain.rules import DEFAULT_ALLOW, pickle_findings

# what find_class may hand out: harmless to call with any arguments the grammar builds
HARMLESS = {("builtins", "int"): int, ("builtins", "list"): list, ("builtins", "dict"): dict,
            ("builtins", "bytearray"): bytearray, ("builtins", "set"): set,
            ("builtins", "str"): str, ("builtins", "tuple"): tuple,
            ("collections", "OrderedDict"): __import__("collections").OrderedDict,
            ("string", "digits"): string.digits}
EXT_CODE = 0xF1  # registered (to builtins.int) only while the tests run


def _u(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


CHUNKS = [
    # stack, marks, memo
    b"(", b"0", b"1", b"2", b"q\x00", b"q\x01", b"h\x00", b"h\x01", b"\x94", b"p0\n",
    b"g0\n", b"r\x02\x00\x00\x00", b"j\x02\x00\x00\x00",
    # constants
    b"]", b"}", b")", b"N", b"\x88", b"K\x01", b"M\x01\x00", b"J\xff\xff\xff\xff",
    b"G" + bytes(8), b"I7\n", b"\x8a\x01\x05", _u("a"), b"Vb\n", b"S'c'\n", b"C\x02ab",
    b"\x96\x02\x00\x00\x00\x00\x00\x00\x00ab", b"\x8f",
    # containers and the opcodes that fill them (on any target)
    b"a", b"e", b"s", b"u", b"\x90", b"t", b"\x85", b"\x86", b"\x87", b"l", b"d", b"\x91",
    # objects
    b"R", b"\x81", b"b", b"o", b"\x93",
    # names
    _u("builtins"), _u("int"), _u("collections"), _u("OrderedDict"), _u("bytearray"),
    _u("my-helper"), _u(""), b"cbuiltins\nint\n", b"ccollections\nOrderedDict\n",
    b"cbuiltins\nbytearray\n", b"c__builtin__\nlist\n", b"cstring\ndigits\n",
    b"cmy-helper\nx\n", b"ibuiltins\nlist\n", b"\x82" + bytes([EXT_CODE]), b"\x82\x05",
]
HEADERS = [b"", b"\x80\x02", b"\x80\x04", b"\x80\x05"]
STREAMS = st.builds(lambda h, body, stop: h + b"".join(body) + (b"." if stop else b""),
                    st.sampled_from(HEADERS), st.lists(st.sampled_from(CHUNKS), max_size=24),
                    st.booleans())
SETTINGS = settings(max_examples=1500, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _mapped(module: str, name: str, proto: int) -> str:
    import _compat_pickle

    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _recording(base):
    class Recording(base):
        def __init__(self, f, proto):
            super().__init__(f)
            self.resolved, self.stream_proto = [], proto

        def find_class(self, module, name):
            # the C Unpickler does not expose its protocol: the grammar puts PROTO first
            full = _mapped(module, name, self.stream_proto)
            obj = HARMLESS.get(tuple(full.split(".", 1)))
            if obj is None:
                raise ModuleNotFoundError(f"No module named {module!r}")
            self.resolved.append(full)
            return obj

    return Recording


@pytest.fixture(scope="module", autouse=True)
def extension_code():
    copyreg.add_extension("builtins", "int", EXT_CODE)
    yield
    copyreg.remove_extension("builtins", "int", EXT_CODE)


def _real_load(base, data: bytes):
    u = _recording(base)(io.BytesIO(data), data[1] if data[:1] == b"\x80" else 0)
    try:
        u.load()
    except Exception:  # noqa: BLE001 - any rejection by the real unpickler
        return False, u.resolved
    return True, u.resolved


def assert_model_agrees(base, data: bytes) -> None:
    """Assert that the scanner's model of ``data`` agrees with the unpickler ``base``: it
    never stops where ``base`` loads, and it sees every import ``base`` resolves."""
    accepted, resolved = _real_load(base, data)
    run = run_pickle(Blob(data), follow=False)
    if accepted:  # never stops where CPython goes on (stronger than "not without a finding")
        assert run.error is None or pickle_findings(run, DEFAULT_ALLOW), (data, run.error)
        assert run.error is None, (data, run.error)
    imports = {name for name, _ in run.imports}
    covered = any(e.kind in ("computed-import", "extension") for e in run.events)
    missing = [n for n in resolved if n not in imports]
    assert not missing or covered, (data, missing, run.events)


@SETTINGS
@given(STREAMS)
def test_model_against_the_c_unpickler(data):
    assert_model_agrees(pickle.Unpickler, data)


@SETTINGS
@given(STREAMS)
def test_model_against_the_python_unpickler(data):
    assert_model_agrees(pickle._Unpickler, data)


@pytest.mark.parametrize("data", [
    b"\x80\x02cbuiltins\nint\n)\x81Nb.",                 # BUILD with a None state
    b"\x80\x02cbuiltins\nbytearray\nK\x02\x85RK\x00K\x41s.",  # SETITEM on a bytearray
    b"\x80\x02cbuiltins\nbytearray\n)R(K\x41K\x42e.",        # APPENDS -> bytearray.extend
    b"\x80\x02]K\x01a.N.",                                    # a second stream after STOP
    b"\x80\x02\x82" + bytes([EXT_CODE]) + b")R.",             # EXT1 -> copyreg registry
])
def test_lenient_cases_the_real_unpickler_accepts(data):
    accepted, _ = _real_load(pickle.Unpickler, data)
    assert accepted
    run = run_pickle(Blob(data))
    assert run.error is None, run.error

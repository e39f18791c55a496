"""``labkit scan --self-test``: an "EICAR for pickles" that every scanner must flag.

The file is built at run time in a temp dir (nothing binary is committed). It is a
protocol-4 pickle that, if someone loaded it, would only call ``builtins.print`` with a
fixed message: harmless, but a pickle that imports and calls a name outside any weights
allow-list, which is exactly what a scanner exists to catch. Like the EICAR anti-virus
test file, it checks that the scanner is installed and wired in, not that it is good.

See Also
--------
labkit.supplychain.cli
"""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["EICAR_MESSAGE", "eicar_pickle", "self_test"]

EICAR_MESSAGE = "LABKIT-SCAN-TEST-FILE: a pickle that calls print; any scanner must flag it"


def eicar_pickle() -> bytes:
    """The test pickle: ``print(EICAR_MESSAGE)`` (hand-assembled, protocol 4)."""
    msg = EICAR_MESSAGE.encode()
    return (b"\x80\x04" + b"\x8c\x08builtins" + b"\x8c\x05print" + b"\x93"
            + b"\x8c" + bytes([len(msg)]) + msg + b"\x85" + b"R" + b".")


def self_test() -> tuple[bool, str]:
    """Write the test pickle to a temp dir, scan it, and say whether it was flagged."""
    from .scanner import scan_file

    with tempfile.TemporaryDirectory(prefix="labkit-selftest-") as tmp:
        p = Path(tmp) / "labkit-eicar.pkl"
        p.write_bytes(eicar_pickle())
        report = scan_file(p)
    kinds = sorted({f.kind for f in report.findings})
    ok = report.verdict == "flagged" and "global" in kinds
    return ok, f"self-test {'passed' if ok else 'FAILED'}: test pickle {report.verdict} ({', '.join(kinds) or 'no findings'})"

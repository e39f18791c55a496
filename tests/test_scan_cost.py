"""Bounded cost: every archive member is decompressed once (work linear in the bytes),
and a decompression bomb or too deep nesting is a budget finding, never clean."""

import gzip
import io
import pickle
import tarfile
import zipfile

from labkit.supplychain.findings import ScanBudget
from labkit.supplychain.scanner import scan_bytes, scan_file


def nested_archive(n_members: int, depth: int, member_size: int = 2000) -> bytes:
    """tar.gz of zips of tar.gz ... each level holding ``n_members`` pickles."""
    data = pickle.dumps(list(range(member_size // 4)), protocol=4)
    for level in range(depth):
        buf = io.BytesIO()
        if level % 2 == 0:
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for i in range(n_members):
                    zf.writestr(f"m{i}.pkl" if level == 0 else f"m{i}.zip", data)
        else:
            with tarfile.open(fileobj=buf, mode="w:gz") as tf:
                for i in range(n_members):
                    info = tarfile.TarInfo(f"m{i}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
    return data


def _work(data: bytes, tmp_path) -> dict:
    p = tmp_path / "nested.bin"
    p.write_bytes(data)
    stats: dict = {}
    r = scan_file(p, stats=stats)
    assert r.verdict == "clean", r.findings
    return stats


def test_decompression_work_is_linear_in_the_content(tmp_path):
    small = _work(nested_archive(3, 3), tmp_path)
    big = _work(nested_archive(6, 3), tmp_path)
    # 6 members per level instead of 3: 8x the leaves, so 8x the content; quadratic
    # re-decompression would grow by far more than that
    # at least every member once (a tar that ends with a zip is also read as that zip,
    # as zipfile would read it, so a few more)
    assert small["members"] >= 3 + 9 + 27 and big["members"] >= 6 + 36 + 216
    assert big["members"] <= 9 * small["members"]
    assert big["decompressed"] <= 9 * small["decompressed"]
    assert big["pickle_ops"] <= 9 * small["pickle_ops"]


def test_decompression_bomb_is_a_budget_finding():
    bomb = gzip.compress(b"\x00" * (8 << 20))
    r = scan_bytes(bomb, budget=ScanBudget(max_bytes=1 << 20))
    assert r.verdict == "flagged"
    assert [f.kind for f in r.findings] == ["budget"]
    # within the default budget it is read to the end: no budget finding (8 MiB of zeros
    # are in no format, so unverified, which is not clean)
    assert [f.kind for f in scan_bytes(bomb).findings] == ["unverified"]


def test_too_deep_nesting_is_a_budget_finding():
    data = nested_archive(1, 5)  # zip, tar.gz, zip, tar.gz, zip: 7 levels with the gzips
    assert scan_bytes(data).verdict == "clean"
    r = scan_bytes(data, budget=ScanBudget(max_depth=3))
    assert {f.kind for f in r.findings} == {"budget"}

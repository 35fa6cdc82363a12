"""Building blocks of static/js checked against Python's tarfile, zstandard and hashlib."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from sp2p.fs.names import member_components

pytestmark = pytest.mark.browser


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def call(page: Any, fn: str, *args: Any) -> Any:
    return page.evaluate(
        "async ([fn, args]) => (await import('/testjs/units.js'))[fn](...args)", [fn, list(args)]
    )


def test_tar_writer_is_read_by_python_tarfile(js_page: Any) -> None:
    long_dir = "d" * 120
    specs = [
        {"path": "root/sub", "dir": True, "mtime": 1_700_000_000},
        {"path": "root/sub/a.txt", "b64": b64(b"hello\n"), "mtime": 1_700_000_001},
        {"path": "root/empty.bin", "b64": "", "mtime": 0},
        {"path": f"root/{long_dir}/{'n' * 110}.dat", "b64": b64(os.urandom(1500)), "mtime": 5},
        {"path": "root/ünïcödé ✓.txt", "b64": b64(b"utf8"), "mtime": 5},
    ]
    got = call(js_page, "buildTar", specs)
    data = base64.b64decode(got["b64"])
    assert got["planned"] == len(data)
    assert len(data) % 512 == 0
    # Ends exactly with two zero blocks, no 10240-byte record padding (Go rejects trailing bytes).
    assert data[-1024:] == bytes(1024)
    assert data[-1536:-1024] != bytes(512)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == [s["path"] for s in specs]
        assert members[0].isdir() and members[0].mode == 0o755
        for spec, m in zip(specs[1:], members[1:], strict=True):
            assert m.isfile() and m.mode == 0o644
            f = tf.extractfile(m)
            assert f is not None
            assert f.read() == base64.b64decode(spec["b64"])
            assert m.mtime == spec["mtime"]


def make_tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, **kw: Any) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_reader_extracts_python_archives(js_page: Any, fmt: int) -> None:
    big = os.urandom(300_000)
    long_name = "top/" + "x" * 90 + "/" + "y" * 99
    members = [
        (info("top", tarfile.DIRTYPE), b""),
        (info("top/a.txt"), b"alpha"),
        (info("top/big.bin"), big),
        (info(long_name), b"long"),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        members.append((info("top/ünï.txt"), b"u"))
    data = make_tar(members, fmt)
    for step in (1, 511, 65536):
        if step == 1 and len(data) > 20000:
            step = 7
        got = call(js_page, "readTar", b64(data), step)
        assert got["ok"], got
        tree = got["tree"]
        assert tree["top/"] == ""
        assert base64.b64decode(tree["top/a.txt"]) == b"alpha"
        assert base64.b64decode(tree["top/big.bin"]) == big
        assert base64.b64decode(tree[long_name]) == b"long"


EVIL = [
    ("dotdot", [(info("../evil"), b"x")], "unsafe path"),
    ("nested dotdot", [(info("a/../../evil"), b"x")], "unsafe path"),
    ("absolute", [(info("/abs/evil"), b"x")], "unsafe path"),
    ("drive", [(info("C:evil"), b"x")], "unsafe path"),
    ("backslash", [(info("\\..\\evil"), b"x")], "unsafe path"),
    ("symlink", [(info("ln", tarfile.SYMTYPE, linkname="/etc"), b"")], "unsupported member"),
    ("hardlink", [(info("hl", tarfile.LNKTYPE, linkname="x"), b"")], "unsupported member"),
    ("fifo", [(info("p", tarfile.FIFOTYPE), b"")], "unsupported member"),
    ("chardev", [(info("c", tarfile.CHRTYPE), b"")], "unsupported member"),
    ("duplicate", [(info("a"), b"1"), (info("a"), b"2")], "duplicate path"),
    ("case clash", [(info("README"), b"1"), (info("readme"), b"2")], "duplicate path"),
    ("nfc clash", [(info("\u00e9.txt"), b"1"), (info("e\u0301.txt"), b"2")], "duplicate path"),
    ("file then dir", [(info("a"), b"1"), (info("a/b"), b"2")], "path conflict"),
    ("clash once portable", [(info("12:30.log"), b"1"), (info("12_30.log"), b"2")], "duplicate path"),
    ("too long", [(info("x" * 256), b"1")], "name component too long"),
]


@pytest.mark.parametrize(("label", "members", "error"), EVIL, ids=[e[0] for e in EVIL])
def test_tar_reader_rejects_hostile_archives(
    js_page: Any, label: str, members: list[tuple[tarfile.TarInfo, bytes]], error: str
) -> None:
    got = call(js_page, "readTar", b64(make_tar(members)), 4096)
    assert got["ok"] is False
    assert got["name"] == "TarError"
    assert error in got["error"]


def test_tar_reader_makes_names_portable_as_the_cli_does(js_page: Any) -> None:
    """T11 by sanitising, as sp2p/fs/names.py does: a folder from Linux with names Windows
    cannot hold still extracts (it used to be refused as a whole)."""
    members = [
        (info("top/CON.txt"), b"1"),
        (info("top/12:30.log"), b"2"),
        (info("top/trailing. "), b"3"),
        (info("top/invoice\u202egpj.exe"), b"4"),
        (info('top/a<b>"c|d?e*'), b"5"),
    ]
    got = call(js_page, "readTar", b64(make_tar(members)), 4096)
    assert got["ok"], got
    want = {"/".join(member_components(m.name)) for m, _ in members if "\u202e" not in m.name}
    assert set(got["tree"]) == want | {"top/invoicegpj.exe"}  # invisible characters dropped, as in safeFileName


def test_tar_reader_rejects_truncation_checksum_and_trailing_data(js_page: Any) -> None:
    good = make_tar([(info("a.txt"), b"data")])
    bad_sum = bytearray(good)
    bad_sum[0] ^= 1
    cases = {
        "no end marker": (good[:1024], "end-of-archive"),
        "one zero block": (good[:1536], "end-of-archive"),
        "checksum": (bytes(bad_sum), "checksum"),
        "trailing": (good + b"junk" + bytes(508), "after end of archive"),
    }
    for label, (data, error) in cases.items():
        got = call(js_page, "readTar", b64(data), 1000)
        assert got["ok"] is False, label
        assert error in got["error"], (label, got)
    # Python's default record padding (zeros after the marker) is harmless.
    assert call(js_page, "readTar", b64(good + bytes(10240)), 1000)["ok"] is True


def test_zstd_chunks_match_python_and_bombs_stop(js_page: Any) -> None:
    chunk = (b"sp2p compressible text " * 20000)[: 256 * 1024]
    for level in (1, 3, 19):
        comp = zstandard.ZstdCompressor(level=level).compress(chunk)
        got = call(js_page, "zstd", b64(comp))
        assert got["ok"], got
        assert base64.b64decode(got["b64"]) == chunk
    random_chunk = os.urandom(100_000)
    got = call(js_page, "zstd", b64(zstandard.ZstdCompressor(level=3).compress(random_chunk)))
    assert base64.b64decode(got["b64"]) == random_chunk
    # T14: one byte over the 256 KiB chunk limit, with and without a declared content size.
    over = bytes(256 * 1024 + 1)
    declared = zstandard.ZstdCompressor(level=3).compress(over)
    undeclared = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(over)
    for comp in (declared, undeclared):
        got = call(js_page, "zstd", b64(comp))
        assert got == {"ok": False, "error": got["error"], "name": "ZstdError"}
        assert "exceeds maximum size" in got["error"] or "window" in got["error"]
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(bytes(64 << 20))
    got = call(js_page, "zstd", b64(bomb))
    assert got["ok"] is False and got["name"] == "ZstdError"
    for garbage in (b"", b"\x00" * 16, b"not zstd at all", declared[:20]):
        got = call(js_page, "zstd", b64(garbage))
        assert got["ok"] is False and got["name"] == "ZstdError", garbage


def test_safe_file_names(js_page: Any) -> None:
    cases = {
        "report.pdf": "report.pdf",
        "../../etc/passwd": "passwd",
        "C:\\Windows\\evil.exe": "evil.exe",
        "..": "received-file",
        "": "received-file",
        "invoice\u202egpj.exe": "invoicegpj.exe",
        "a\x1b[2Kb\r\n.txt": "a[2Kb.txt",
        "CON": "_CON",
        "nul.tar.gz": "_nul.tar.gz",
        'a<b>:c"d|e?f*.txt': "a_b__c_d_e_f_.txt",
        "trailing. ": "trailing",
        "<img src=x onerror=alert(1)>": "_img src=x onerror=alert(1)_",
    }
    got = call(js_page, "names", list(cases))
    assert [g["safe"] for g in got] == list(cases.values())
    assert got[5]["visible"] == "invoice\\u{202e}gpj.exe"


def test_incremental_sha256(js_page: Any) -> None:
    data = os.urandom(1_000_003)
    for step in (1000, 65536, 262144, 262144 + 29):
        assert call(js_page, "sha256Pieces", b64(data), step) == hashlib.sha256(data).hexdigest()


def test_sha256_padding_edges_and_odd_pieces(js_page: Any) -> None:
    """Every length around the one- and two-block padding cases, fed in pieces that straddle
    block boundaries in every way (static/js/sha256.js is our own code)."""
    data = os.urandom(300)
    lengths = [0, 1, 3, 54, 55, 56, 57, 63, 64, 65, 111, 119, 120, 121, 127, 128, 129, 191, 192, 300]
    for step in (1, 5, 63, 64, 65, 300):
        got = call(js_page, "sha256Lengths", b64(data), lengths, step)
        assert got == [hashlib.sha256(data[:n]).hexdigest() for n in lengths], step


def test_early_peer_mac_is_not_lost(js_page: Any) -> None:
    """W26: everything the peer sends before we start reading is buffered, MAC first."""
    got = call(js_page, "earlyMacIsKept")
    assert got["bufferedBeforeReading"] == 32 + 300000
    assert got["same"] is True


def test_withdrawn_signalling_wait_takes_nothing(js_page: Any) -> None:
    got = call(js_page, "withdrawnWaitTakesNothing")
    assert got == {"staleOutcome": "aborted", "fresh": "attempt-2", "waiting": 0}


def test_sha256_rounds_file_is_current() -> None:
    """static/js/sha256_blocks.js is generated; a hand edit or a stale copy fails here."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "gen_sha256_js.py"
    out = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

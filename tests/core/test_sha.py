"""sp2p.proto.sha agrees with hashlib and hmac (which it bypasses for small inputs, issue 12),
on both sides of its size threshold, and a stream keeps one implementation across copies."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sp2p.proto import sha

REPO = Path(__file__).resolve().parents[2]


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_the_stdlib(key: bytes, msg: bytes) -> None:
    """Keys shorter than, equal to and longer than the 64-byte block (hashed first)."""
    assert sha.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


def test_rfc4231_case_6() -> None:
    """RFC 4231 test case 6: a 131-byte key, hashed before use."""
    mac = sha.hmac_sha256(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert mac.hex() == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_sha256_on_both_sides_of_the_threshold() -> None:
    for size in (0, 1, sha.SMALL - 1, sha.SMALL, 3 * sha.SMALL + 5):
        data = os.urandom(size)
        assert sha.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        assert sha.sha1(data).digest() == hashlib.sha1(data).digest()  # noqa: S324 - RFC 6455


def test_stream_copies_and_pieces_give_hashlibs_digest() -> None:
    pieces = [os.urandom(n) for n in (5, sha.SMALL * 2, 7)]
    for order in (pieces, pieces[::-1]):  # a small first piece, and a large one
        stream, reference = sha.sha256_stream(), hashlib.sha256()
        empty_copy = stream.copy()
        for piece in order:
            stream.update(piece)
            reference.update(piece)
            snapshot = stream.copy()
            assert snapshot.hexdigest() == reference.hexdigest()
        assert stream.digest() == reference.digest()
        assert empty_copy.hexdigest() == hashlib.sha256().hexdigest()
        empty_copy.update(b"abc")
        assert empty_copy.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_small_inputs_never_load_openssl() -> None:
    code = (
        "import sys\n"
        "from sp2p.proto import sha\n"
        "s = sha.sha256_stream(); s.update(b'x'); s.copy().hexdigest()\n"
        "sha.hmac_sha256(b'k', b'm'); sha.sha256(b'y'); sha.sha1(b'z'); sha.compare_digest(b'a', b'a')\n"
        "print(sorted(m for m in ('hashlib', '_hashlib', 'hmac') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"

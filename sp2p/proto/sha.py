"""SHA-256 and HMAC-SHA256 without OpenSSL's start-up cost for small inputs (issue 12).

`hashlib` loads `_hashlib`, which initialises OpenSSL: ~12 M instructions (~3 ms) of every
start, for a few hashes of a few dozen bytes (key schedule, key confirmation, the WebSocket
accept check, a 1-byte file's digest). The interpreter's own SHA-256 has no start cost but
hashes ~7x slower than OpenSSL (177 vs 1,206 MB/s here). So: inputs under `SMALL` bytes go to
the built-in, anything larger to hashlib (loaded then). A stream decides on its first piece:
our senders, Go's and the pages send full chunks until the last, so a first piece under
`SMALL` is a small transfer; one that is not only costs speed, never correctness.
"""

from __future__ import annotations

import sys
from _operator import _compare_digest as compare_digest  # what hmac.compare_digest is
from typing import Any

__all__ = ["SMALL", "compare_digest", "hmac_sha256", "sha1", "sha256", "sha256_bulk", "sha256_stream"]

#: below this many bytes the built-in SHA-256 beats loading OpenSSL (64 KiB: 0.4 ms vs ~3 ms)
SMALL = 64 * 1024
_BLOCK = 64  # SHA-256's block size (RFC 2104's B)
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))

try:  # the interpreter's own modules (no stubs in typeshed)
    from _sha1 import sha1 as sha1  # type: ignore[import-not-found]

    if sys.version_info >= (3, 12):
        from _sha2 import sha256 as _builtin  # type: ignore[import-not-found]
    else:
        from _sha256 import sha256 as _builtin  # type: ignore[import-not-found]
except ImportError:  # a build without them
    from hashlib import sha1 as sha1
    from hashlib import sha256 as _builtin


def sha256_bulk() -> Any:
    """OpenSSL's SHA-256, for file contents."""
    import hashlib

    return hashlib.sha256()


def sha256(data: bytes) -> Any:
    """A SHA-256 object over `data`, from whichever implementation is cheaper for its size."""
    if len(data) < SMALL:
        return _builtin(data)
    sha = sha256_bulk()
    sha.update(data)
    return sha


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC with SHA-256 (as hmac.new(key, msg, hashlib.sha256).digest())."""
    if len(key) > _BLOCK:
        key = _builtin(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = _builtin(key.translate(_IPAD))
    inner.update(msg)
    return bytes(_builtin(key.translate(_OPAD) + inner.digest()).digest())


class sha256_stream:  # noqa: N801 - used like the hashlib constructors
    """A SHA-256 object that picks its implementation on the first `update` (see the module)."""

    __slots__ = ("_sha",)

    def __init__(self) -> None:
        self._sha: Any = None

    def update(self, data: bytes, /) -> None:
        if self._sha is None:
            self._sha = sha256(data)
        else:
            self._sha.update(data)

    def copy(self) -> sha256_stream:
        clone = sha256_stream()
        clone._sha = None if self._sha is None else self._sha.copy()
        return clone

    def digest(self) -> bytes:
        return bytes(_builtin().digest() if self._sha is None else self._sha.digest())

    def hexdigest(self) -> str:
        return str(_builtin().hexdigest() if self._sha is None else self._sha.hexdigest())

"""The few primitives sp2p takes from pyca/cryptography, loaded lean; HKDF from the stdlib.

The public modules re-export classes of cryptography's Rust extension, but importing them
loads whole packages (`primitives.ciphers` with every cipher mode and the "decrepit"
algorithms), and `X25519PrivateKey.generate()` imports the OpenSSL backend module with RSA
and EC: ~15 ms of every CLI start (issue 12). Where this cryptography has the Rust classes
they are used directly, else the public API. HKDF-Expand with SHA-256 is a few lines of
HMAC (RFC 5869 §2.3, sp2p.proto.sha), checked against the spec's vectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag as InvalidTag

from sp2p.proto.sha import hmac_sha256

#: cryptography's Rust x25519 module, or None to go through the public classes
_x25519: Any = None
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as _Private
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as _Public
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM as AESGCM
else:
    try:
        from cryptography.hazmat.bindings._rust import openssl as _rust

        AESGCM = _rust.aead.AESGCM
        _x25519 = _rust.x25519
    except (ImportError, AttributeError):  # an older cryptography: its public modules
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as _Private
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as _Public

        _x25519 = None

_SHA256_BYTES = 32


def x25519_generate() -> bytes:
    """A new raw X25519 private key."""
    key = _x25519.generate_key() if _x25519 is not None else _Private.generate()
    return bytes(key.private_bytes_raw())


def _private(raw: bytes) -> _Private:
    return _x25519.from_private_bytes(raw) if _x25519 is not None else _Private.from_private_bytes(raw)


def x25519_public(private: bytes) -> bytes:
    return bytes(_private(private).public_key().public_bytes_raw())


def x25519(private: bytes, peer_public: bytes) -> bytes:
    """The shared secret; ValueError for a peer key that yields all zeros (low order)."""
    public = _x25519.from_public_bytes(peer_public) if _x25519 is not None \
        else _Public.from_public_bytes(peer_public)
    return bytes(_private(private).exchange(public))


def hkdf_expand_sha256(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand: T(i) = HMAC(PRK, T(i-1) || info || i), concatenated."""
    if not 0 < length <= 255 * _SHA256_BYTES:
        raise ValueError("HKDF-Expand: length out of range")
    out, block = b"", b""
    for i in range(1, -(-length // _SHA256_BYTES) + 1):
        block = hmac_sha256(prk, block + info + bytes([i]))
        out += block
    return out[:length]


def hkdf_extract_sha256(salt: bytes, ikm: bytes) -> bytes:
    return hmac_sha256(salt, ikm)

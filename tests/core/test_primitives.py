"""sp2p.proto.primitives agrees with pyca/cryptography's public API (which it bypasses to load
less): X25519 keys and secrets, AES-GCM, and the stdlib HKDF against cryptography's HKDF."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import aead
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from sp2p.proto import primitives


def test_x25519_matches_the_public_api() -> None:
    mine, theirs = primitives.x25519_generate(), X25519PrivateKey.generate()
    public = primitives.x25519_public(mine)
    assert public == X25519PrivateKey.from_private_bytes(mine).public_key().public_bytes_raw()
    their_public = theirs.public_key().public_bytes_raw()
    assert primitives.x25519(mine, their_public) == theirs.exchange(X25519PublicKey.from_public_bytes(public))
    with pytest.raises(ValueError):  # a low-order point gives an all-zero secret
        primitives.x25519(mine, bytes(32))


def test_aes_gcm_is_cryptographys() -> None:
    assert primitives.AESGCM is aead.AESGCM
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = primitives.AESGCM(key).encrypt(nonce, b"data", b"aad")
    with pytest.raises(primitives.InvalidTag):
        aead.AESGCM(key).decrypt(nonce, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"aad")


@given(prk=st.binary(min_size=32, max_size=64), info=st.binary(max_size=80), length=st.integers(1, 255 * 32))
def test_hkdf_expand_matches_cryptography(prk: bytes, info: bytes, length: int) -> None:
    expected = HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)
    assert primitives.hkdf_expand_sha256(prk, info, length) == expected


@given(salt=st.binary(max_size=64), ikm=st.binary(max_size=64), info=st.binary(max_size=40))
def test_hkdf_matches_cryptography(salt: bytes, ikm: bytes, info: bytes) -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=42, salt=salt, info=info).derive(ikm)
    assert primitives.hkdf_expand_sha256(primitives.hkdf_extract_sha256(salt, ikm), info, 42) == expected


def test_hkdf_expand_refuses_lengths_rfc5869_forbids() -> None:
    with pytest.raises(ValueError):
        primitives.hkdf_expand_sha256(bytes(32), b"", 255 * 32 + 1)

"""X25519 key agreement, the HKDF key schedule and key confirmation (client.md §2.1–2.3, §2.6).

PRK = HKDF-Extract(salt=seed, IKM=X25519(my, peer))
info = "sp2p-v1" || sessionID || senderPub || receiverPub || label   (no separators)
Each output is its own HKDF-Expand call with its label.
MAC(role) = HMAC-SHA256(k_confirm, role || senderPub || receiverPub)
"""

from __future__ import annotations

import base64
import binascii

from sp2p.errors import KeyConfirmationError, SecurityError
from sp2p.proto.constants import CONFIRM_BYTES, KEY_BYTES, VERIFY_BYTES, Role
from sp2p.proto.primitives import (
    hkdf_expand_sha256,
    hkdf_extract_sha256,
    x25519,
    x25519_generate,
    x25519_public,
)
from sp2p.proto.sha import compare_digest, hmac_sha256
from sp2p.record import field, record, replace

INFO_PREFIX = b"sp2p-v1"
PARALLEL_TOKEN_BYTES = 16


class InvalidPeerKey(SecurityError):
    """The peer's public key is malformed or a low-order point."""


@record(frozen=True)
class KeyPair:
    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(x25519_generate())

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        return cls(private, x25519_public(private))

    def public_b64(self) -> str:
        return base64.b64encode(self.public).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """Decode a base64 public key from a `crypto` message; raise InvalidPeerKey when malformed."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPeerKey("invalid peer key: not base64") from None
    if len(raw) != KEY_BYTES:
        raise InvalidPeerKey(f"invalid peer key: {len(raw)} bytes, expected {KEY_BYTES}")
    return raw


def shared_secret(private: bytes, peer_public: bytes) -> bytes:
    """X25519; rejects wrong lengths and low-order points (all-zero output)."""
    if len(peer_public) != KEY_BYTES:
        raise InvalidPeerKey(f"invalid peer key: {len(peer_public)} bytes, expected {KEY_BYTES}")
    try:
        secret = x25519(private, peer_public)
    except ValueError:  # pyca refuses all-zero shared secrets itself
        raise InvalidPeerKey("invalid peer key (low-order point)") from None
    if not any(secret):
        raise InvalidPeerKey("invalid peer key (low-order point)")
    return secret


@record(frozen=True)
class SessionKeys:
    """Everything derived for one session; `role` says which direction is ours."""

    role: Role
    prk: bytes = field(repr=False)
    info_prefix: bytes = field(repr=False)
    k_s2r: bytes = field(repr=False)
    k_r2s: bytes = field(repr=False)
    k_confirm: bytes = field(repr=False)
    verify_code: str
    sender_pub: bytes
    receiver_pub: bytes

    @property
    def send_key(self) -> bytes:
        return self.k_s2r if self.role is Role.SENDER else self.k_r2s

    @property
    def recv_key(self) -> bytes:
        return self.k_r2s if self.role is Role.SENDER else self.k_s2r

    def expand(self, label: bytes, length: int) -> bytes:
        return _expand(self.prk, self.info_prefix + label, length)

    def parallel_keys(self, index: int) -> tuple[bytes, bytes]:
        """(send key, receive key) of secondary stream `index` >= 1."""
        if index < 1:
            raise ValueError("secondary stream indices start at 1")
        s2r = self.expand(b"s2r-parallel-%d" % index, KEY_BYTES)
        r2s = self.expand(b"r2s-parallel-%d" % index, KEY_BYTES)
        return (s2r, r2s) if self.role is Role.SENDER else (r2s, s2r)

    def for_epoch(self, epoch: int) -> SessionKeys:
        """Fresh stream and confirmation keys for reconnect number `epoch` >= 1
        (docs/protocol-extensions.md §2): a new channel restarts its sequence numbers, so it
        must never reuse the keys of an earlier one (AES-GCM nonce reuse)."""
        if epoch < 1:
            raise ValueError("reconnect epochs start at 1")
        return replace(
            self,
            k_s2r=self.expand(b"sender-to-receiver-heal-%d" % epoch, KEY_BYTES),
            k_r2s=self.expand(b"receiver-to-sender-heal-%d" % epoch, KEY_BYTES),
            k_confirm=self.expand(b"key-confirm-heal-%d" % epoch, KEY_BYTES),
        )

    def parallel_token(self) -> bytes:
        return self.expand(b"parallel-tcp", PARALLEL_TOKEN_BYTES)

    def own_confirmation(self) -> bytes:
        return confirmation_mac(self.k_confirm, self.role, self.sender_pub, self.receiver_pub)

    def check_peer_confirmation(self, mac: bytes) -> None:
        peer = Role.RECEIVER if self.role is Role.SENDER else Role.SENDER
        expected = confirmation_mac(self.k_confirm, peer, self.sender_pub, self.receiver_pub)
        if not compare_digest(mac, expected):
            raise wrong_code_error()


def wrong_code_error() -> KeyConfirmationError:
    """What both sides say when confirmation fails: a typo and a key-swapping server look alike."""
    return KeyConfirmationError(
        "key confirmation failed: wrong code, or someone tampered with the connection",
        hint="check that both sides used the same code; if they did, the connection may be intercepted",
    )


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand_sha256(prk, info, length)


def derive_session_keys(
    *, role: Role, seed: bytes, session_id: str, private: bytes, sender_pub: bytes, receiver_pub: bytes
) -> SessionKeys:
    peer_pub = receiver_pub if role is Role.SENDER else sender_pub
    secret = shared_secret(private, peer_pub)
    prk = hkdf_extract_sha256(seed, secret)
    prefix = INFO_PREFIX + session_id.encode("utf-8") + sender_pub + receiver_pub
    return SessionKeys(
        role=role,
        prk=prk,
        info_prefix=prefix,
        k_s2r=_expand(prk, prefix + b"sender-to-receiver", KEY_BYTES),
        k_r2s=_expand(prk, prefix + b"receiver-to-sender", KEY_BYTES),
        k_confirm=_expand(prk, prefix + b"key-confirm", KEY_BYTES),
        verify_code=_expand(prk, prefix + b"sp2p-verify", VERIFY_BYTES).hex(),
        sender_pub=sender_pub,
        receiver_pub=receiver_pub,
    )


def confirmation_mac(k_confirm: bytes, role: Role, sender_pub: bytes, receiver_pub: bytes) -> bytes:
    digest = hmac_sha256(k_confirm, role.value.encode("ascii") + sender_pub + receiver_pub)
    assert len(digest) == CONFIRM_BYTES
    return digest


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """Plain RFC 5869 HKDF (used by known-answer tests)."""
    return hkdf_expand_sha256(hkdf_extract_sha256(salt, ikm), info, length)

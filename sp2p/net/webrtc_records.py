"""DTLS 1.2 application-data records with AES-128-GCM, sealed and opened by `cryptography`.

aiortc moves every DTLS record through pyOpenSSL: a memory-BIO write, an SSL_read into a
fresh buffer and a BIO read per datagram, each a handful of Python calls with error
checks around cffi. Once the handshake is over, the record layer for the one cipher suite
WebRTC peers pick (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, RFC 5288 / RFC 6347 4.1.2.1)
is one AEAD call per record. This module is that record layer; webrtc_dtls.py decides
when it takes over from OpenSSL.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"
VERSION = "DTLSv1.2"
APPLICATION_DATA = 23
ALERT = 21
#: DTLS 1.2 on the wire (RFC 6347 4.1)
WIRE_VERSION = 0xFEFD
HEADER = struct.Struct("!BHQH")  # type, version, epoch << 48 | sequence, length
HEADER_LEN = HEADER.size  # 13
EXPLICIT_NONCE = 8
TAG = 16
OVERHEAD = EXPLICIT_NONCE + TAG
_KEY, _IV = 16, 4
SEQ_MASK = (1 << 48) - 1
#: sequence numbers remembered behind the newest for replay detection (RFC 6347 4.1.2.6)
REPLAY_WINDOW = 256
_EXPLICIT = struct.Struct("!Q")
#: additional data of the AEAD (RFC 5246 6.2.3.3): epoch and sequence, type, version, length
AAD = struct.Struct("!QBHH")


def prf_sha256(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """TLS 1.2's PRF with SHA-256 (RFC 5246 section 5)."""
    seed = label + seed
    out = b""
    a = seed
    while len(out) < size:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + seed, hashlib.sha256).digest()
    return out[:size]


def key_block(master: bytes, client_random: bytes, server_random: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(client write key, server write key, client IV, server IV) for AES-128-GCM (no MAC keys)."""
    block = prf_sha256(master, b"key expansion", server_random + client_random, 2 * (_KEY + _IV))
    return block[:16], block[16:32], block[32:36], block[36:40]


def records(datagram: bytes) -> Iterator[tuple[int, int, memoryview]]:
    """(type, epoch << 48 | sequence, whole record) for each DTLS record in a datagram;
    stops at a truncated one."""
    view = memoryview(datagram)
    pos, end = 0, len(datagram)
    while pos + HEADER_LEN <= end:
        kind, _version, epoch_seq, length = HEADER.unpack_from(datagram, pos)
        stop = pos + HEADER_LEN + length
        if stop > end:
            return
        yield kind, epoch_seq, view[pos:stop]
        pos = stop


class ReplayWindow:
    """Accepts each sequence number once, and none older than the window (RFC 6347 4.1.2.6)."""

    def __init__(self, floor: int) -> None:
        self.top = floor - 1  # newest accepted (or, at first, the last one before `floor`)
        self.seen = (1 << REPLAY_WINDOW) - 1  # bit i: top - i is used up; all below `floor` are

    def fresh(self, seq: int) -> bool:
        if seq > self.top:
            return True
        back = self.top - seq
        return back < REPLAY_WINDOW and not (self.seen >> back) & 1

    def accept(self, seq: int) -> None:
        if seq > self.top:
            shift = seq - self.top
            self.seen = ((self.seen << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
            self.top = seq
        else:
            self.seen |= 1 << (self.top - seq)


class RecordLayer:
    """AES-128-GCM records of one epoch: `open` the peer's, `seal` ours."""

    def __init__(self, *, read_key: bytes, read_iv: bytes, write_key: bytes, write_iv: bytes,
                 epoch: int) -> None:
        self._open = AESGCM(read_key).decrypt
        write = AESGCM(write_key)
        self._seal, self._open_own = write.encrypt, write.decrypt
        self._read_iv = read_iv
        self._write_iv = write_iv
        self.epoch = epoch
        self._epoch_bits = epoch << 48
        self.next_seq = -1  # ours; set by start_sending()
        self.replay: ReplayWindow | None = None

    @classmethod
    def for_role(cls, role: str, master: bytes, client_random: bytes, server_random: bytes,
                 epoch: int = 1) -> RecordLayer:
        ckey, skey, civ, siv = key_block(master, client_random, server_random)
        if role == "client":
            return cls(read_key=skey, read_iv=siv, write_key=ckey, write_iv=civ, epoch=epoch)
        return cls(read_key=ckey, read_iv=civ, write_key=skey, write_iv=siv, epoch=epoch)

    def open(self, kind: int, epoch_seq: int, record: memoryview) -> bytes | None:
        """The plaintext of one of the peer's records of our epoch; None if forged or replayed."""
        seq = epoch_seq & SEQ_MASK
        replay = self.replay
        if replay is not None and not replay.fresh(seq):
            return None
        size = len(record) - HEADER_LEN - OVERHEAD
        if size < 0:
            return None
        nonce = self._read_iv + bytes(record[HEADER_LEN : HEADER_LEN + EXPLICIT_NONCE])
        aad = AAD.pack(epoch_seq, kind, WIRE_VERSION, size)
        try:
            plain = self._open(nonce, record[HEADER_LEN + EXPLICIT_NONCE :], aad)
        except InvalidTag:
            return None
        if replay is None:
            self.replay = replay = ReplayWindow(seq)  # older ones went through OpenSSL
        replay.accept(seq)
        return plain

    def open_own(self, record: memoryview) -> bytes | None:
        """Decrypt one of OpenSSL's records sealed with our write key (to check the derivation
        or re-seal it under our sequence numbers)."""
        kind, _version, epoch_seq, length = HEADER.unpack_from(record, 0)
        nonce = self._write_iv + bytes(record[HEADER_LEN : HEADER_LEN + EXPLICIT_NONCE])
        aad = AAD.pack(epoch_seq, kind, WIRE_VERSION, length - OVERHEAD)
        try:
            return self._open_own(nonce, record[HEADER_LEN + EXPLICIT_NONCE :], aad)
        except InvalidTag:
            return None

    def start_sending(self, next_seq: int) -> None:
        self.next_seq = next_seq

    def seal(self, kind: int, plain: bytes) -> bytes:
        """One record of ours; its explicit nonce is its epoch and sequence, as OpenSSL's."""
        seq = self.next_seq
        self.next_seq = seq + 1
        epoch_seq = self._epoch_bits | seq
        explicit = _EXPLICIT.pack(epoch_seq)
        header = HEADER.pack(kind, WIRE_VERSION, epoch_seq, len(plain) + OVERHEAD)
        aad = AAD.pack(epoch_seq, kind, WIRE_VERSION, len(plain))
        return header + explicit + self._seal(self._write_iv + explicit, plain, aad)


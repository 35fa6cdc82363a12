"""Encrypted frame stream (client.md §2.5): codec and AEAD, no I/O.

Wire layout of one frame, both directions:

    offset size  field
    0      4     L = 1 + 8 + len(ciphertext||tag), u32 big-endian, 25 <= L <= 524288
    4      1     message type (cleartext, authenticated as AAD)
    5      8     sequence number, u64 big-endian
    13     L-9   AES-256-GCM ciphertext followed by the 16-byte tag

    nonce = 00 00 00 00 || seq (u64 BE)
    AAD   = type || seq (u64 BE) || 0x01

Each direction has its own key and counter starting at 0. The reader demands
seq == expected, except for Cancel (0x09), which may jump forward because a
pipelined writer can reserve sequence numbers it never writes.
"""

from __future__ import annotations

import struct
from typing import Final

from sp2p.errors import IntegrityError, RemoteProtocolError, StreamTruncated, TransferError
from sp2p.proto.constants import (
    AAD_VERSION,
    FRAME_HEADER,
    MAX_FRAME_SIZE,
    NONCE_LIMIT,
    TAG_BYTES,
    MsgType,
)
from sp2p.proto.primitives import AESGCM, InvalidTag
from sp2p.proto.receivebuffer import NEED_DATA as NEED_DATA
from sp2p.proto.receivebuffer import SMALL_PIECE as SMALL_PIECE
from sp2p.proto.receivebuffer import NeedData, ReceiveBuffer
from sp2p.record import record

_LEN = struct.Struct(">I")
_HEADER = struct.Struct(">IBQ")
_AAD = struct.Struct(">BQB")
_NONCE = struct.Struct(">IQ")
#: L counts type + seq + ciphertext; below this a frame cannot even hold type and seq
MIN_FRAME_PAYLOAD: Final = 1 + 8


class _Eof:
    def __repr__(self) -> str:
        return "EOF"


EOF: Final = _Eof()


_set = object.__setattr__  # a frozen record's own __init__ sets its fields so


@record(frozen=True, slots=True)
class SealedFrame:
    """A frame as read off the wire, not yet authenticated."""

    msg_type: int
    seq: int
    #: often a view into the received bytes; open it before feeding the decoder much more
    ciphertext: bytes | memoryview

    def __init__(self, msg_type: int, seq: int, ciphertext: bytes | memoryview) -> None:  # one per frame
        _set(self, "msg_type", msg_type)
        _set(self, "seq", seq)
        _set(self, "ciphertext", ciphertext)


@record(frozen=True, slots=True)
class Frame:
    """An authenticated, decrypted frame."""

    msg_type: int
    seq: int
    body: bytes

    def __init__(self, msg_type: int, seq: int, body: bytes) -> None:  # one per frame
        _set(self, "msg_type", msg_type)
        _set(self, "seq", seq)
        _set(self, "body", body)


class FrameDecoder:
    """Incremental splitter: feed any split of the byte stream, get whole frames.

    The declared length is checked against the maximum before anything of that
    size is buffered, so a forged length cannot make us allocate. A frame that lies
    inside one large received piece is handed out as a view of that piece (no copy);
    see `ReceiveBuffer`.
    """

    def __init__(self, max_frame: int = MAX_FRAME_SIZE) -> None:
        self._max = max_frame
        self._buf = ReceiveBuffer()
        self._eof = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes (a large piece is kept by reference: do not change it); b"" marks the end."""
        if not data:
            self._eof = True
            return
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> SealedFrame | NeedData | _Eof:
        buffered = len(self._buf)
        if buffered >= 4:
            (length,) = _LEN.unpack_from(self._buf.peek(4), 0)
            if length < MIN_FRAME_PAYLOAD:
                raise RemoteProtocolError(f"frame too small ({length} bytes)")
            if length > self._max:
                raise RemoteProtocolError(f"frame too large ({length} bytes)")
            if buffered >= 4 + length:
                frame = self._buf.extract(4 + length)
                _, msg_type, seq = _HEADER.unpack_from(frame, 0)
                return SealedFrame(msg_type, seq, frame[FRAME_HEADER:])
        if self._eof:
            if buffered:
                raise StreamTruncated("transfer incomplete: the connection closed in the middle of a frame")
            return EOF
        return NEED_DATA


def _aad(msg_type: int, seq: int) -> bytes:
    return _AAD.pack(msg_type, seq, AAD_VERSION)


def _nonce(seq: int) -> bytes:
    return _NONCE.pack(0, seq)


class FrameSealer:
    """Encrypts frames in one direction with strictly increasing sequence numbers."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.next_seq = 0

    def reserve(self) -> int:
        """Take the next sequence number (for pipelined encryption with seal_at)."""
        seq = self.next_seq
        if seq >= NONCE_LIMIT:
            raise TransferError("nonce counter exhausted: transfer too large")
        self.next_seq = seq + 1
        return seq

    def seal(self, msg_type: int, body: bytes) -> bytes:
        return self.seal_at(self.reserve(), msg_type, body)

    def seal_at(self, seq: int, msg_type: int, body: bytes) -> bytes:
        """Encrypt with an already reserved seq; safe to call from worker threads."""
        header = self._header(seq, msg_type, len(body))
        return header + self._aead.encrypt(_nonce(seq), body, _aad(msg_type, seq))

    def seal_into(self, out: bytearray, seq: int, msg_type: int, body: bytes | memoryview) -> int:
        """Like seal_at, but writes the frame at the start of `out`; returns its length.

        Lets a caller reuse one buffer per frame in flight instead of allocating two.
        """
        header = self._header(seq, msg_type, len(body))
        end = FRAME_HEADER + len(body) + TAG_BYTES
        out[:FRAME_HEADER] = header
        self._aead.encrypt_into(_nonce(seq), body, _aad(msg_type, seq), memoryview(out)[FRAME_HEADER:end])
        return end

    @staticmethod
    def _header(seq: int, msg_type: int, body_len: int) -> bytes:
        length = MIN_FRAME_PAYLOAD + body_len + TAG_BYTES
        if length > MAX_FRAME_SIZE:
            raise TransferError(f"frame too large to send ({length} bytes)")
        return _HEADER.pack(length, msg_type, seq)


class FrameOpener:
    """Authenticates and decrypts frames in one direction, enforcing the sequence."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.expected_seq = 0

    def open(self, frame: SealedFrame) -> Frame:
        expected = self.expected_seq
        if expected >= NONCE_LIMIT:
            raise IntegrityError("nonce counter exhausted: transfer too large")
        seq = frame.seq
        # Cancel may skip sequence numbers the pipelined peer reserved but never wrote.
        cancel_gap = frame.msg_type == MsgType.CANCEL and expected < seq < NONCE_LIMIT
        if seq != expected and not cancel_gap:
            raise IntegrityError(
                f"sequence mismatch: got {seq}, expected {expected} (possible replay or reorder)"
            )
        if len(frame.ciphertext) < TAG_BYTES:
            raise IntegrityError("data integrity check failed: frame shorter than its tag")
        try:
            body = self._aead.decrypt(_nonce(seq), frame.ciphertext, _aad(frame.msg_type, seq))
        except InvalidTag:
            raise IntegrityError(
                "data integrity check failed: the connection may be compromised"
            ) from None
        self.expected_seq = seq + 1
        return Frame(frame.msg_type, seq, body)

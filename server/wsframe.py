"""The server side of RFC 6455 framing, sans-IO: client frames in, server frames out.

Only what a signalling server needs, kept small because every idle connection holds one
`FrameReader`: masked client frames, text/binary messages split over continuation frames,
ping/pong/close control frames, a byte limit on a whole message (1009 before the payload
is even buffered), and unmasked server frames. No extensions (permessage-deflate is never
negotiated, so a compressed frame is a protocol error).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_MAX_CONTROL = 125
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class ProtocolError(Exception):
    """The client broke the framing rules; close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message (`binary` False: UTF-8 text, validated, and `text` is it
    decoded: the check is the decode, so it is done once)."""

    data: bytes
    binary: bool
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Control:
    """A ping, pong or close frame. For close, `payload` is the raw close body."""

    opcode: int
    payload: bytes


Event = Message | Control


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, as one big-integer operation (fast in CPython)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameReader:
    """Feed received bytes, get events. Raises ProtocolError on a framing violation or a
    message over `max_message` bytes (checked on each frame header, before buffering)."""

    __slots__ = ("_buf", "_max", "_parts", "_size", "_binary")

    def __init__(self, max_message: int) -> None:
        self._buf = b""
        self._max = max_message
        #: fragments of the message in progress (None: no message started)
        self._parts: list[bytes] | None = None
        self._size = 0
        self._binary = False

    @property
    def max_message(self) -> int:
        return self._max

    def leftover(self) -> bytes | None:
        """The bytes fed and not yet parsed (the start of a frame), for another reader to be
        fed first: None while a fragmented message is in progress (its parts stay here)."""
        return self._buf if self._parts is None else None

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 & 0x70:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not b1 & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            opcode = b0 & 0x0F
            fin = bool(b0 & 0x80)
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = _U16.unpack_from(buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = _U64.unpack_from(buf, pos + 2)[0]
                head = 10
            self._check_header(opcode, fin, length)
            if end - pos < head + 4 + length:
                break
            mask = buf[pos + head : pos + head + 4]
            start = pos + head + 4
            payload = _unmask(buf[start : start + length], mask)
            pos = start + length
            event = self._frame(opcode, fin, payload)
            if event is not None:
                events.append(event)
        self._buf = buf[pos:] if pos < end else b""
        return events

    def _check_header(self, opcode: int, fin: bool, length: int) -> None:
        if opcode >= 0x8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown control opcode")
            if not fin or length > _MAX_CONTROL:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented or oversized control frame")
            return
        if opcode == OP_CONT:
            if self._parts is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._parts is not None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        else:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown data opcode")
        if self._size + length > self._max:
            raise ProtocolError(CLOSE_TOO_BIG, "Message is too big")

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> Event | None:
        if opcode >= 0x8:
            if opcode == OP_CLOSE and len(payload) == 1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "one-byte close body")
            return Control(opcode, payload)
        if opcode != OP_CONT:
            self._parts = []
            self._size = 0
            self._binary = opcode == OP_BINARY
        assert self._parts is not None
        self._size += len(payload)
        if not fin:
            self._parts.append(payload)
            return None
        data = b"".join((*self._parts, payload)) if self._parts else payload
        binary = self._binary
        self._parts = None
        self._size = 0
        if binary:
            return Message(data, True)
        try:
            return Message(data, False, data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_INVALID_DATA, "text message is not UTF-8") from None


def encode(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 1 << 16:
        return bytes((0x80 | opcode, 126)) + _U16.pack(n) + payload
    return bytes((0x80 | opcode, 127)) + _U64.pack(n) + payload


def text_frame(text: str) -> bytes:
    return encode(OP_TEXT, text.encode("utf-8"))


def close_frame(code: int, reason: str = "") -> bytes:
    return encode(OP_CLOSE, _U16.pack(code) + reason.encode("utf-8")[:_MAX_CONTROL - 2])


def close_code(payload: bytes) -> int | None:
    """The status code in a close frame's body (None: no code given)."""
    return _U16.unpack_from(payload)[0] if len(payload) >= 2 else None

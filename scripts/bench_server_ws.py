"""A lean asyncio WebSocket client for the server benchmark: RFC 6455 on a bare asyncio.Protocol.

Why not a library: `websockets.asyncio.client.connect` cost ~0.65 ms of client CPU per
connection and ~40 us per message here, and its sans-I/O `ClientProtocol` (what this file
used before) still ~1.3 ms of client CPU per full exchange, about what the server under
test spent on it: on this 2-core machine the load generator shares the cores with the
server, so its CPU showed up in the exchange latencies of every target. This client does
what the server needs to see from a real one, no less: the opening handshake (a random
key, the 101 and its Sec-WebSocket-Accept checked), every frame masked with a fresh random
key, pings answered, fragmented messages joined, the close handshake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections import deque
from urllib.parse import urlsplit

#: largest message accepted (the server's own cap is 64 KiB)
MAX_MESSAGE = 1 << 20
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolViolation(Exception):
    """The server broke the framing rules (or the handshake)."""


class HttpRefused(Exception):
    """The server answered the upgrade with another HTTP status than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"http {status}")
        self.status = status


class Closed(Exception):
    """The connection closed before the awaited message."""


def _masked(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a fresh random key (RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + _U16.pack(n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + _U64.pack(n)
    mask = os.urandom(4)
    if not n:
        return head + mask
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
    return head + mask + body


class WsClient(asyncio.Protocol):
    """One client WebSocket: `await opened`, `send(text)`, `await recv()`, `close()`."""

    def __init__(self, host: str, path: str, loop: asyncio.AbstractEventLoop) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._buf = b""
        self._handshaken = False
        self._messages: deque[str] = deque()
        self._parts: list[bytes] = []  #: a fragmented message so far
        self._waiter: asyncio.Future[None] | None = None
        self._close_rcvd: int | None = None
        self._close_sent = False
        self.lost = False  #: the TCP connection ended

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        try:
            if not self._handshaken:
                buf = self._handshake(buf)
            self._buf = self._frames(buf) if buf else b""
        except (ProtocolViolation, HttpRefused, ValueError) as exc:
            if not self.opened.done():
                self.opened.set_exception(exc)
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        self._wake()

    # internals

    def _handshake(self, buf: bytes) -> bytes:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > 16384:
                raise ProtocolViolation("response head too long")
            self._buf = buf
            return b""
        head, rest = buf[:end].decode("latin-1"), buf[end + 4 :]
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        if status != 101:
            raise HttpRefused(status)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()  # noqa: S324 - RFC 6455
        if headers.get("sec-websocket-accept") != accept or headers.get("upgrade", "").lower() != "websocket":
            raise ProtocolViolation("bad 101 response")
        self._handshaken = True
        self.opened.set_result(None)
        return rest

    def _frames(self, buf: bytes) -> bytes:
        """Handle every whole frame in `buf`; returns the incomplete rest."""
        pos, end = 0, len(buf)
        woke = False
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80 or b0 & 0x70:
                raise ProtocolViolation("masked or reserved bits in a server frame")
            n, head = b1 & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = _U16.unpack_from(buf, pos + 2)[0], 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = _U64.unpack_from(buf, pos + 2)[0], 10
            if n > MAX_MESSAGE:
                raise ProtocolViolation("message too big")
            if end - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            opcode = b0 & 0x0F
            if opcode >= 0x8:
                self._control(opcode, payload)
            elif b0 & 0x80 and not self._parts:
                self._messages.append(payload.decode())
                woke = True
            else:
                self._parts.append(payload)
                if b0 & 0x80:
                    self._messages.append(b"".join(self._parts).decode())
                    self._parts = []
                    woke = True
        if woke:
            self._wake()
        return buf[pos:]

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._write(_masked(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self._close_rcvd = _U16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
            if not self._close_sent:  # answer, then the server closes the TCP connection
                self._close_sent = True
                self._write(_masked(OP_CLOSE, payload[:2]))
            self._wake()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self.lost:
            self._transport.write(data)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the API

    def send(self, text: str) -> None:
        if not self._close_sent:
            self._write(_masked(OP_TEXT, text.encode()))

    async def recv(self) -> str:
        while not self._messages:
            if self.lost or self._close_rcvd is not None:
                raise Closed("connection closed")
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._messages.popleft()

    def close(self) -> None:
        """A close frame, then FIN once it is written (a client's clean goodbye)."""
        if self._transport is not None and not self.lost:
            if not self._close_sent:
                self._close_sent = True
                self._write(_masked(OP_CLOSE, _U16.pack(1000)))
            self._transport.close()

    def abort(self) -> None:
        """Drop the TCP connection now (FIN, no close handshake)."""
        if self._transport is not None:
            self._transport.abort()

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport


async def dial(url: str, src: str, timeout: float) -> WsClient:
    """Connect from source address `src` and complete the opening handshake."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((src, 0))
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            _, client = await loop.create_connection(
                lambda: WsClient(parts.netloc, parts.path or "/", loop), sock=sock
            )
            try:
                await client.opened
            except BaseException:
                client.abort()
                raise
    except BaseException:
        sock.close()
        raise
    return client

"""A small blocking WebSocket client (RFC 6455) for the signaling connection.

Why not websocket-client: importing it (with ssl, http.cookies, platform, ...) cost ~25 ms of
every CLI start, a sixth of a 1-byte transfer (issue 12). This client speaks just what
signaling needs: one text or binary message at a time, answers pings, closes cleanly; ssl
loads only for wss://. A URL that an http(s)_proxy environment variable would route goes
through websocket-client as before (`_Proxied`), since that library speaks proxies.

One reader thread calls `recv()`; any thread may `send_text()` (sends are locked).
Errors are `WsError` (OSError from the socket passes through as is). Once the closing
handshake started, sends are dropped without an error, as websocket-client let them go.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from sp2p.log import get_logger
from sp2p.net import dial, http_head
from sp2p.proto.sha import sha1

log = get_logger(__name__)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: the server's handshake answer may not exceed this (it is a few hundred bytes)
_MAX_RESPONSE_HEAD: Final = 16384
_READ_SIZE: Final = 65536


class WsError(Exception):
    """The WebSocket failed: bad handshake, protocol violation, or the connection ended."""


class WsHandshakeStatus(WsError):
    """The server answered the upgrade with HTTP `status` instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class WsConnection(Protocol):
    def recv(self) -> tuple[int, bytes]:
        """The next text/binary message, or (OP_CLOSE, body) once the server closed."""
        ...

    def send_text(self, text: str) -> None: ...

    def close(self) -> None:
        """Start the closing handshake (idempotent); the reader's recv() then sees OP_CLOSE."""
        ...

    def release(self) -> None:
        """Let go of the socket, whatever state the closing handshake is in."""
        ...


def open_websocket(url: str, *, timeout: float, max_message: int) -> WsConnection:
    """Connect and upgrade; messages over `max_message` bytes are skipped unread."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise WsError(f"not a WebSocket URL: {url}")
    if dial.proxied(secure, parts.hostname):
        return _Proxied(url, timeout, max_message)
    host = parts.hostname
    sock = dial.connect(host, parts.port or (443 if secure else 80), secure=secure, timeout=timeout)
    try:
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        ws = WebSocket(sock, max_message)
        ws.handshake(dial.host_header(host, parts.port), resource)
        sock.settimeout(None)
        return ws
    except BaseException:
        sock.close()
        raise


def _mask(key: bytes, data: bytes) -> bytes:
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)  # clients mask every frame (RFC 6455 §5.3)
    return head + key + _mask(key, payload)


class WebSocket:
    def __init__(self, sock: socket.socket, max_message: int) -> None:
        self._sock = sock
        self._max = max_message
        self._buf = bytearray()
        self._send_lock = threading.Lock()
        self._close_sent = False

    # -- reading -----------------------------------------------------------------------------
    def _fill(self) -> None:
        chunk = self._sock.recv(_READ_SIZE)
        if not chunk:
            raise WsError("the connection ended without a closing handshake")
        self._buf += chunk

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _skip(self, n: int) -> None:
        while n > 0:
            if not self._buf:
                self._fill()
            step = min(n, len(self._buf))
            del self._buf[:step]
            n -= step

    def handshake(self, netloc: str, resource: str) -> None:
        key = base64.b64encode(os.urandom(16))
        # No Origin header: the server only checks origins when one is present.
        request = (f"GET {resource} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        self._sock.sendall(request.encode())
        try:
            answer = http_head.read_head(self._buf, lambda: self._sock.recv(_READ_SIZE), _MAX_RESPONSE_HEAD)
        except http_head.HeadError as exc:
            raise WsError(str(exc)) from exc
        if answer.status != 101:
            raise WsHandshakeStatus(answer.status)
        accept = base64.b64encode(sha1(key + _ACCEPT_GUID).digest()).decode()  # noqa: S324 - RFC 6455
        if (answer.headers.get("upgrade", "").lower() != "websocket"
                or answer.headers.get("sec-websocket-accept") != accept):
            raise WsError("the server did not accept the WebSocket upgrade")

    def recv(self) -> tuple[int, bytes]:
        parts: list[bytes] = []
        opcode, size = -1, 0
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if b0 & 0x70 or b1 & 0x80:
                raise WsError("invalid frame from the server (reserved bits or masking)")
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            if op >= OP_CLOSE:  # control frames may come between fragments
                if n > 125 or not fin:
                    raise WsError("invalid control frame from the server")
                body = self._read(n)
                if op == OP_CLOSE:
                    self.close()  # echo it: the handshake is complete
                    return OP_CLOSE, body
                if op == OP_PING:
                    self._send(OP_PONG, body)
                continue
            if (op == OP_CONT) != (opcode >= 0):
                raise WsError("unexpected continuation frame from the server")
            if op != OP_CONT:
                opcode = op
            size += n
            if size > self._max:
                self._skip(n)  # never buffer more than a message may hold
            else:
                parts.append(self._read(n))
            if fin:
                if size <= self._max:
                    return opcode, b"".join(parts)
                log.debug("dropping oversize signaling message (%d bytes)", size)
                opcode, parts, size = -1, [], 0

    # -- writing -----------------------------------------------------------------------------
    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if self._close_sent:
                # closing: as with a socket whose peer left, the message goes nowhere and the
                # reader reports the end (a server's last error, queued, stays readable)
                log.debug("WebSocket closing: not sending opcode %d", opcode)
                return
            if opcode == OP_CLOSE:
                self._close_sent = True
            self._sock.sendall(_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode())

    def close(self) -> None:
        if not self._close_sent:  # closed meanwhile: nothing left to tell the server
            with contextlib.suppress(OSError, WsError):
                self._send(OP_CLOSE, struct.pack("!H", 1000))

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv()
        self._sock.close()


class _Proxied:
    """websocket-client, for a URL behind an http(s)_proxy: same interface, same errors."""

    def __init__(self, url: str, timeout: float, max_message: int) -> None:
        import websocket

        self._lib: Any = websocket
        self._max = max_message
        try:
            self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True,
                                                   enable_multithread=True)
        except websocket.WebSocketBadStatusException as exc:
            raise WsHandshakeStatus(exc.status_code) from exc
        except websocket.WebSocketException as exc:
            raise WsError(str(exc)) from exc
        self._ws.settimeout(None)

    def recv(self) -> tuple[int, bytes]:
        while True:
            try:
                opcode, data = self._ws.recv_data(control_frame=False)
            except self._lib.WebSocketException as exc:
                raise WsError(str(exc)) from exc
            if opcode == OP_CLOSE:
                return OP_CLOSE, bytes(data)
            if opcode in (OP_TEXT, OP_BINARY):
                if len(data) <= self._max:
                    return opcode, bytes(data)
                log.debug("dropping oversize signaling message (%d bytes)", len(data))

    def send_text(self, text: str) -> None:
        try:
            self._ws.send(text)
        except self._lib.WebSocketException as exc:
            raise WsError(str(exc)) from exc

    def close(self) -> None:
        with contextlib.suppress(OSError, self._lib.WebSocketException):
            self._ws.send_close()

    def release(self) -> None:
        with contextlib.suppress(OSError, self._lib.WebSocketException):
            self._ws.shutdown()  # type: ignore[no-untyped-call]

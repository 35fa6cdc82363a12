"""One signalling WebSocket: serialised writes with a timeout, activity tracking, clean close.

flask-sock hands us a `simple_websocket.Server`. That object runs a reader (a greenlet
under gunicorn's gevent worker, a thread under werkzeug) which also writes (pongs, pings,
close replies) with a bare `socket.send()` that can write partially and never times out,
while our handler and the other peer's relay may write too. Two greenlets writing one
gevent socket at once is an error, and interleaved partial writes corrupt frames, so
`Peer` replaces the socket seen by the library with `_GuardedSocket`: every write, ours or
the library's, goes through one lock and `sendall()` under the write timeout; its close
lingers so a 1009 close frame is read, not reset. A peer that does not drain its socket
within the timeout is treated as dead and closed.

Liveness: simple_websocket pings every `ping_interval` and closes the connection when the
pong does not come back by the next ping. `ActivitySelector` (passed to simple_websocket
as `selector_class`) notes every time the reader sees bytes arrive, so pings and pongs
count as activity for the session's idle limit, not only messages. `ReaderThread` (the
library's `thread_class`) always wakes the handler when the reader ends.

These reach into simple-websocket's internals: pyproject pins it below the next minor
version and tests/server/test_websocket_patch.py fails when they move.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import Any

from simple_websocket import ConnectionClosed  # type: ignore[import-untyped]
from wsproto.events import CloseConnection, TextMessage

from sp2p.proto.signal import MAX_SIGNAL_MESSAGE, Envelope, Error, SignalType

log = logging.getLogger("sp2p.server")

#: file descriptor -> Peer, for ActivitySelector
_BY_FD: dict[int, Peer] = {}
_BY_FD_LOCK = threading.Lock()

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

#: how long, and how much, a closing connection's unread input is drained (see close())
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024


class ActivitySelector(selectors.PollSelector):
    """A poll selector (no extra fd per connection, unlike epoll) that records activity."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(timeout)
        if events:
            now = time.monotonic()
            for key, _mask in events:
                peer = _BY_FD.get(key.fd)
                if peer is not None:
                    peer.last_activity = now
        return events


class ReaderThread(threading.Thread):
    """simple_websocket's reader thread (passed as `thread_class`), made to always wake
    the handler when it ends: on an oversized message the library sets its event *before*
    marking the connection closed, so a handler could wait forever."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True
        target = kwargs.get("target")
        self._ws = getattr(target, "__self__", None)

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self._ws is not None:
                self._ws.connected = False
                self._ws.event.set()


class PeerClosed(Exception):
    """The connection is gone (closed by either side, or broken)."""


class _GuardedSocket:
    """Proxy for the library's view of the socket: all writes serialised and bounded."""

    def __init__(self, sock: socket.socket, lock: threading.RLock) -> None:
        self._sock = sock
        self._lock = lock

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self._sock.sendall(data)

    def close(self) -> None:
        """The library's last act: a lingering close. Closing with unread input (the rest
        of an oversized message) makes the kernel send RST, which can destroy our close
        frame (1009) before the client reads it; so send FIN first and discard what is
        still arriving, bounded in time and bytes, before the descriptor goes."""
        sock = self._sock
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class Peer:
    """Our side of one WebSocket. Thread-safe `send_text`/`close`."""

    def __init__(self, ws: Any, ip: str, *, write_timeout: float) -> None:
        self.ws = ws
        self.ip = ip
        self.last_activity = time.monotonic()
        self._lock = threading.RLock()
        #: held while writing; the join path holds it to order welcome before relays
        self.write_lock = self._lock
        self._closed = False
        raw: socket.socket = ws.sock
        self._raw = raw
        raw.settimeout(write_timeout)  # bounds sendall(); the reader only recv()s when readable
        with contextlib.suppress(OSError):  # small frames must not wait for delayed ACKs
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws.sock = _GuardedSocket(raw, self._lock)
        self._fd = raw.fileno()
        with _BY_FD_LOCK:
            _BY_FD[self._fd] = self

    @property
    def closed(self) -> bool:
        return self._closed or not self.ws.connected

    # -- reading --------------------------------------------------------------------
    def receive(self, timeout: float | None = None) -> str | None:
        """Next message as text; None on timeout. Binary frames must be UTF-8 (they are
        relayed as text frames); other binary frames are dropped. Raises PeerClosed."""
        while True:
            if self._closed:
                raise PeerClosed
            try:
                data = self.ws.receive(timeout=timeout)
            except ConnectionClosed as exc:
                raise PeerClosed from exc
            if data is None:
                if not self.ws.connected:
                    raise PeerClosed
                return None
            self.last_activity = time.monotonic()
            if isinstance(data, bytes | bytearray):
                try:
                    data = bytes(data).decode("utf-8")
                except UnicodeDecodeError:
                    continue
            # simple_websocket counts characters; the wire limit is in bytes
            if len(data) > MAX_SIGNAL_MESSAGE // 4 and len(data.encode()) > MAX_SIGNAL_MESSAGE:
                self.close(CLOSE_TOO_BIG, "message too big")
                raise PeerClosed
            return str(data)

    # -- writing --------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Send one text frame. On failure (timeout, broken pipe) close and return False."""
        with self._lock:
            if self.closed:
                return False
            try:
                self._raw.sendall(self.ws.ws.send(TextMessage(data=text)))
                return True
            except Exception as exc:  # noqa: BLE001 - OSError, timeout, wsproto state errors
                log.debug("send failed (%s); closing peer %s", type(exc).__name__, self.ip)
        self.abort()
        return False

    def send(self, envelope: Envelope) -> bool:
        return self.send_text(envelope.to_json())

    def fail(self, code: str, message: str) -> None:
        """Send `error` and close (1000), as upstream does after every error."""
        self.send(Envelope.build(SignalType.ERROR, Error(code, message)))
        self.close(CLOSE_NORMAL, "")

    # -- closing --------------------------------------------------------------------
    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (best effort) and wake our handler. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.ws.connected:
                with contextlib.suppress(Exception):
                    self._raw.sendall(self.ws.ws.send(CloseConnection(code=code, reason=reason)))
            self.ws.connected = False
            self.ws.event.set()

    def abort(self) -> None:
        """Close without a handshake (the peer is not reading)."""
        with self._lock:
            self._closed = True
            self.ws.connected = False
            self.ws.event.set()
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)

    def finish(self, grace: float = 1.0) -> None:
        """After the handler: give the client `grace` seconds to answer our close frame,
        then cut the socket so the library's reader thread ends now, not at its next ping."""
        self.close(CLOSE_NORMAL, "")
        thread = getattr(self.ws, "thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(grace)
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    self._raw.shutdown(socket.SHUT_RDWR)
                thread.join(grace)
        with _BY_FD_LOCK:
            if _BY_FD.get(self._fd) is self:
                del _BY_FD[self._fd]

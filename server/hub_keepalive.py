"""An idle connection's ping and pong, done in the gevent hub while its reader waits.

A connection's reader (server.connection.Peer.receive) sends its own pings and reads the
pongs; woken for both, a ping cycle cost the worker two greenlet switches, a Turns deferral
and an epoll_ctl pair (~32 us; 500 cycles a second at 15,000 idle senders). While the reader
waits (server.waiting.GeventInput), the hub does both instead when it can: it sends a due
ping under the connection's write lock, if that is free and the socket takes it whole, and
reads input that comes while a pong is awaited, if it is nothing but empty pongs (~17 us a
cycle). Anything else wakes the reader, which goes its usual way: a missed pong, a ping the
socket cannot take, a pong with a body, a message (kept for it, already read).
"""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol

from server.wsframe import OP_PING, OP_PONG, FrameReader, encode

__all__ = ["PING_FRAME", "RECV_BYTES", "HubKeepalive"]

#: our ping, the same bytes every time (the reader's and the hub's)
PING_FRAME = encode(OP_PING, b"")
#: a client's pong to it: masked, empty (a browser's, the Go and our CLI's)
_PONG_HEAD = bytes((0x80 | OP_PONG, 0x80))
_PONG_SIZE = 6
#: one recv() of a connection's input, by its reader or the hub
RECV_BYTES = 65536


class _PeerState(Protocol):
    """What of server.connection.Peer the hub's side of it uses."""

    write_lock: Any
    last_activity: float
    _sock: socket.socket
    _os_sock: socket.socket
    _frames: FrameReader
    _held: list[bytes]
    _closed: bool
    _close_sent: bool
    _ping_interval: float
    _next_ping: float
    _awaiting_pong: bool
    _until: float
    _unread: bytes | None

    def abort(self) -> None: ...


class HubKeepalive:
    """server.waiting.HubSide, mixed into server.connection.Peer, whose state it shares."""

    __slots__ = ()

    @property
    def awaits_pong(self: _PeerState) -> bool:
        return self._awaiting_pong

    def due_in_hub(self: _PeerState) -> float | None:
        """Send a due ping from the hub while the reader waits (plain TCP, the write lock
        free, the socket's buffer not full); None leaves it to the reader (and anything
        else that came due, a missed pong first)."""
        now = time.monotonic()
        if (
            now < self._next_ping
            or now >= self._until
            or self._awaiting_pong
            or self._closed
            or self._held
            or self._os_sock is self._sock
        ):
            return None
        lock = self.write_lock
        if not lock.acquire(blocking=False):
            return None
        try:
            if self._close_sent:
                return None
            try:
                sent = self._os_sock.send(PING_FRAME)
            except OSError:  # a full buffer (or worse): the reader's own write decides
                return None
            if sent != len(PING_FRAME):  # half a frame out: the stream cannot go on
                self.abort()
                return None
        finally:
            lock.release()
        self._awaiting_pong = True
        self._next_ping = now + self._ping_interval
        return min(self._until, self._next_ping)

    def pong_in_hub(self: _PeerState) -> bool:
        """Read input that came while a pong is awaited, in the hub: True if it was just
        pongs (no frame begun before them); else it is kept for the reader."""
        if self._closed or self._os_sock is self._sock:
            return False
        try:
            data = self._os_sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return True  # nothing after all
        except OSError:
            data = b""
        size = len(data)
        if (
            size
            and size % _PONG_SIZE == 0
            and self._frames.leftover() == b""
            and all(data.startswith(_PONG_HEAD, at) for at in range(0, size, _PONG_SIZE))
        ):
            self._awaiting_pong = False
            self.last_activity = time.monotonic()
            return True
        kept: bytes | None = data  # (for the reader: its next receive() reads it first)
        self._unread = kept
        return False

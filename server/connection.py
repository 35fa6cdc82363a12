"""One signalling WebSocket after the 101: read in the handler's own greenlet, write from any.

There is no reader greenlet (or thread): `Peer.receive()` runs in the connection's handler
and does everything reading involves: waiting for bytes with a deadline, parsing frames
(server.wsframe), answering pings, sending our own pings every `ping_interval` and closing
the connection when a pong does not come back by the next one, replying to a close (while
it waits, the hub sends an idle connection's due ping and reads its pong: `due_in_hub`,
`pong_in_hub`, under the same write lock and ping state, so nothing else changes). Other
greenlets (the other peer's relay, the reaper, a TURN timer) only write: every write goes
through `write_lock` and `sendall()` under the socket's timeout, so frames never interleave
and a peer that does not drain its socket within `write_timeout` is cut off.

Waiting never changes the socket's timeout (that is the writers' bound): the reader waits
for readability (server.waiting: one io watcher per connection and a shared deadline wheel
under gevent, `poll` under threads) and only then reads. A close from another greenlet
sends the close frame and leaves the reader to notice the client's answer; if the client
stays silent, a timer cuts the socket after `CLOSE_GRACE` so the handler ends anyway.
`finish()` is the lingering close: FIN first, then drain (bounded) what the client still
sends, so our last frame (a 1009, say) is read, not destroyed by a reset.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from server import wsframe
from server.hub_keepalive import PING_FRAME, RECV_BYTES, HubKeepalive
from server.waiting import call_later, input_for, os_socket, rlock_for
from server.write_batch import holding_batch
from server.wsframe import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    Control,
    FrameReader,
    ProtocolError,
)
from sp2p.proto.signal import Envelope, Error, SignalType

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "Peer",
    "PeerClosed",
    "ReaderState",
]

log = logging.getLogger("sp2p.server")

#: how long, and how much, a closing connection's unread input is drained (see finish())
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024
#: how long a client may take to answer a close sent from another greenlet
CLOSE_GRACE = 1.0


class PeerClosed(Exception):
    """The connection is gone (closed by either side, or broken)."""


@dataclass(frozen=True, slots=True)
class ReaderState:
    """What a connection's reader holds beyond the socket, so another process can go on
    reading it (server.handoff): the messages read and not yet handled, the bytes of a
    frame begun, the ping schedule (monotonic times: one clock for every process here)."""

    inbox: tuple[str, ...]
    leftover: bytes
    next_ping: float
    awaiting_pong: bool
    last_activity: float


class Peer(HubKeepalive):
    """Our side of one WebSocket. `receive` from its handler only; `send_text`/`close`
    from anywhere."""

    __slots__ = (
        "ip",
        "last_activity",
        "write_lock",
        "_sock",
        "_os_sock",
        "_input",
        "_frames",
        "_inbox",
        "_held",
        "_closed",
        "_close_sent",
        "_eof",
        "_reading",
        "_ping_interval",
        "_next_ping",
        "_awaiting_pong",
        "_moved",
        "_until",
        "_unread",
        "unhurried",
    )

    def __init__(
        self, sock: socket.socket, ip: str, *, write_timeout: float, ping_interval: float, max_message: int
    ) -> None:
        self.ip = ip
        self.last_activity = time.monotonic()
        #: held while writing; the join path holds it to order welcome before relays
        self.write_lock: threading.RLock = rlock_for(sock)
        self._sock = sock
        #: first try of every recv and send (server.waiting.os_socket)
        self._os_sock = os_socket(sock)
        #: the deadline of the reader's wait in progress (a ping sent in the hub waits on)
        self._until = float("inf")
        #: what the hub read for the reader and did not handle (b"": EOF)
        self._unread: bytes | None = None
        self._input = input_for(sock)
        self._frames = FrameReader(max_message)
        #: messages parsed but not yet returned (a read can carry several)
        self._inbox: list[str] = []
        #: frames a WriteBatch holds for this connection (sent before any other write)
        self._held: list[bytes] = []
        self._closed = False
        self._close_sent = False
        #: the client's side ended (FIN or reset) without a close handshake
        self._eof = False
        self._reading = False
        self._ping_interval = ping_interval
        self._next_ping = self.last_activity + ping_interval if ping_interval > 0 else float("inf")
        self._awaiting_pong = False
        #: the connection went to another process (server.handoff): never touch its wire
        self._moved = False
        #: nobody else waits on this connection (a sender nobody joined yet): its input,
        #: and so its EOF when the client goes, may wait for a quiet moment of the loop,
        #: behind new connections' work (server.background.Turns: thousands may close at once)
        self.unhurried = False
        sock.settimeout(write_timeout)  # bounds sendall(); reads wait for readability first
        with contextlib.suppress(OSError):  # small frames must not wait for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ping_interval(self) -> float:
        return self._ping_interval

    @property
    def max_message(self) -> int:
        return self._frames.max_message

    # -- reading (the handler only) -------------------------------------------------
    def receive(self, timeout: float | None = None) -> str | None:
        """Next message as text; None on timeout. Binary messages must be UTF-8 (they are
        relayed as text); other binary messages are dropped. Raises PeerClosed."""
        deadline = time.monotonic() + timeout if timeout is not None else float("inf")
        while True:
            if self._inbox:
                return self._inbox.pop(0)
            if self._closed:
                raise PeerClosed
            now = time.monotonic()
            if now >= self._next_ping:
                self._ping(now)
                continue
            if now >= deadline:
                return None
            if self._unread is not None:  # the hub read it, and woke us for it
                self._read()
                continue
            self._reading = True
            self._until = deadline
            try:
                readable = self._input.wait(min(deadline, self._next_ping), self.unhurried, self)
            except OSError:
                readable = True  # let recv() tell what happened
            finally:
                self._reading = False
            if readable:
                self._read()

    def _read(self) -> None:
        data = self._unread
        if data is not None:
            self._unread = None
        else:
            try:
                data = self._os_sock.recv(RECV_BYTES)
            except (TimeoutError, BlockingIOError, InterruptedError):
                return  # TLS: readable, yet not a whole record
            except OSError:
                data = b""
        if not data:
            self._closed = self._eof = True
            return
        self.last_activity = time.monotonic()
        try:
            events = self._frames.feed(data)
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            return
        for event in events:
            if isinstance(event, Control):
                self._control(event)
                if self._closed:
                    return
            elif not event.binary:
                self._inbox.append(event.text)
            else:
                with contextlib.suppress(UnicodeDecodeError):
                    self._inbox.append(event.data.decode("utf-8"))

    def _control(self, event: Control) -> None:
        if event.opcode == OP_PING:
            self._write(wsframe.encode(OP_PONG, event.payload))
        elif event.opcode == OP_PONG:
            self._awaiting_pong = False
        elif event.opcode == OP_CLOSE:
            code = wsframe.close_code(event.payload)
            self.close(CLOSE_NORMAL if code is None else code)

    def _ping(self, now: float) -> None:
        if self._awaiting_pong:
            self.close(CLOSE_POLICY, "Ping/Pong timeout")
            return
        self._awaiting_pong = True
        self._next_ping = now + self._ping_interval
        self._write(PING_FRAME)

    def hurry(self) -> None:
        """Someone waits on this connection now: its input is read as soon as it comes."""
        if self.unhurried:
            self.unhurried = False
            self._input.hurry()

    # -- moving to another process (server.handoff) ---------------------------------
    def reader_state(self) -> ReaderState | None:
        """The reader's state, for the process this connection moves to; None if it cannot
        move (closed, or a fragmented message half read)."""
        leftover = self._frames.leftover()
        if self._closed or self._held or leftover is None or self._unread is not None:
            return None
        return ReaderState(
            tuple(self._inbox), leftover, self._next_ping, self._awaiting_pong, self.last_activity
        )

    @property
    def movable(self) -> bool:
        """Plain TCP under gevent (the descriptor is all there is to it; TLS state is not)."""
        return self._os_sock is not self._sock

    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def family(self) -> socket.AddressFamily:
        return self._sock.family

    def moved_out(self, commit: Callable[[], bool]) -> bool:
        """Hand the connection over if `commit()` (telling the other process to serve it)
        succeeds: from then on nothing is written or shut down on it here, and finish()
        leaves it as it is (the caller closes only our descriptor). Under the write lock,
        so no write can come after the commit; False, and `commit` not called, if the
        connection was closed first."""
        with self.write_lock:
            if self._close_sent or not commit():
                return False
            self._moved = self._closed = self._close_sent = True
            return True

    def resume(self, carried: ReaderState) -> None:
        """Go on reading where another process's reader stopped."""
        self._inbox.extend(carried.inbox)
        if carried.leftover:
            self._frames.feed(carried.leftover)  # the start of a frame: no events yet
        self._next_ping = carried.next_ping
        self._awaiting_pong = carried.awaiting_pong
        self.last_activity = carried.last_activity

    # -- writing (anyone) ----------------------------------------------------------
    def has_input(self) -> bool:
        """Messages already read and not yet returned by receive() (more will follow at once)."""
        return bool(self._inbox)

    def _write(self, frame: bytes) -> bool:
        with self.write_lock:
            if self._close_sent:
                return False
            if self._held:  # held relays first: order is kept whoever writes next
                frame = b"".join([*self._held, frame])
                self._held.clear()
            try:
                self._send(frame)
                return True
            except Exception as exc:  # noqa: BLE001 - OSError, timeout: the client is gone or stuck
                log.debug("send failed (%s); closing peer %s", type(exc).__name__, self.ip)
        self.abort()
        return False

    def _send(self, frame: bytes) -> None:
        """sendall() within the write timeout. One send() first: a frame nearly always fits
        the socket buffer whole, and gevent's sendall costs a getsockopt() syscall and a few
        layers of Python per call (~15 % of relaying a message)."""
        started = time.monotonic()
        try:
            sent = self._os_sock.send(frame)
        except BlockingIOError:  # the OS socket under gevent's, with a full buffer
            sent = 0
        if sent == len(frame):
            return
        sock = self._sock
        timeout = sock.gettimeout()
        if timeout is not None:  # the rest within what is left of the write timeout
            sock.settimeout(max(0.001, timeout - (time.monotonic() - started)))
        try:
            sock.sendall(memoryview(frame)[sent:])
        finally:
            sock.settimeout(timeout)

    def send_bytes(self, data: bytes) -> bool:
        """Write `data` as it is (the handshake's 101); as send_text on failure."""
        return self._write(data)

    def send_text(self, text: str) -> bool:
        """Send one text frame. On failure (timeout, broken pipe) cut the connection and
        return False. Inside a WriteBatch of the calling greenlet the frame is held for the
        batch's one write (True: held)."""
        if self._closed:
            return False
        frame = wsframe.text_frame(text)
        batch = holding_batch()
        if batch is None:
            return self._write(frame)
        with self.write_lock:
            if not self._held:
                batch.targets.append(self)
            self._held.append(frame)
        return True

    def flush_held(self) -> None:
        """Send what a WriteBatch held for this connection."""
        if self._held:
            self._write(b"")

    def send(self, envelope: Envelope) -> bool:
        return self.send_text(envelope.to_json())

    def fail(self, code: str, message: str) -> None:
        """Send `error` and close (1000), as upstream does after every error."""
        self.send(Envelope.build(SignalType.ERROR, Error(code, message)))
        self.close(CLOSE_NORMAL, "")

    # -- closing -----------------------------------------------------------------
    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (best effort) and end the handler's reading. Idempotent."""
        with self.write_lock:
            if self._close_sent:
                self._closed = True
                return
            self._closed = True
            if self._write(wsframe.close_frame(code, reason)):
                self._close_sent = True
        if self._reading:  # called from another greenlet while the handler waits for input
            call_later(self._sock, CLOSE_GRACE, self._cut_if_reading)

    def _cut_if_reading(self) -> None:
        if self._reading:
            self.abort()

    def abort(self) -> None:
        """Cut the connection without a handshake (the client is not reading)."""
        if self._moved:
            return  # another process serves it
        self._closed = True
        self._close_sent = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        """After the handler: close frame if none went out, then the lingering close. The
        socket itself is closed by whoever accepted it. A client that already hung up
        (EOF) gets neither: nothing would read them, and a mass disconnect is thousands of
        these at once."""
        try:
            if not (self._eof or self._moved):
                self._linger()
        finally:
            self._input.close()

    def _linger(self) -> None:
        self.close(CLOSE_NORMAL, "")
        sock = self._sock
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES and deadline > time.monotonic():
                if not self._input.wait(deadline):
                    break
                chunk = sock.recv(RECV_BYTES)
                if not chunk:
                    break
                drained += len(chunk)

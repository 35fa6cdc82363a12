"""How a connection's reader waits for input until a deadline, and how a timer runs.

Under gevent (the server's worker) every idle connection waits for input with a deadline
(its next ping, the hello timeout). gevent's `wait_read(fd, timeout)` made a new io watcher,
a `Timeout` (a libev timer and a TimeoutError) and a Waiter for every wait: ~5 us of the
worker's CPU per wait and four objects per idle connection for the collector to walk. Here
a connection keeps one io watcher (`GeventInput`) and parks a Waiter in one per-worker
`Wheel`: deadlines rounded up to `TICK`, swept by one repeating timer in the hub, which wakes
only the readers whose slot is due (O(due), not O(connections)). A deadline fires up to
TICK late: it only ever schedules a ping or a timeout of seconds.

Work that can wait (an unhurried reader's input, the teardown of sessions whose clients
left) is a worker's background work: it runs at quiet moments (`Turns`, `give_way`) and
takes at most its share of the worker's time (`Pace`, `background_share`).

Under threads (werkzeug in the in-process tests) a reader polls with a timeout
(`PollInput`), and timers are threads.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from server.background import turns
from server.hub import gevent_module, is_gevent, of_this_hub

#: seconds per slot of the wheel (how late a deadline may fire)
TICK = 0.25


class Input(Protocol):
    def wait(self, until: float, unhurried: bool = False, side: HubSide | None = None) -> bool:
        """True when the socket has input (or EOF), False once `until` (monotonic) passed.
        `unhurried`: input may wait for a quiet moment (under gevent, see Turns); `side`:
        what the hub may do for the reader meanwhile (under gevent)."""

    def hurry(self) -> None:
        """The reader waiting now is no longer unhurried."""

    def close(self) -> None: ...


class HubSide(Protocol):
    """What a connection's reader lets the hub do for it while it waits (GeventInput):
    the idle connection's ping and pong, with no greenlet woken (server.connection)."""

    def due_in_hub(self) -> float | None:
        """The reader's slot came due: handle it here and return the time to wait until
        next, or None to wake the reader."""

    def pong_in_hub(self) -> bool:
        """Input came while a pong is awaited: True if it was all pongs, handled here (the
        reader sleeps on); False to wake the reader for what came."""

    @property
    def awaits_pong(self) -> bool: ...


def input_for(sock: socket.socket) -> Input:
    return GeventInput(sock) if is_gevent(sock) else PollInput(sock)


def os_socket(sock: socket.socket) -> socket.socket:
    """The socket to try a send or recv on first. Under gevent, for plain TCP, the OS
    socket inside gevent's wrapper (non-blocking): a call that need not wait skips gevent's
    Python layer (~0.6 us a send, ~0.9 us a recv); one that would wait raises
    BlockingIOError, and the caller waits through the wrapper. Otherwise `sock` itself
    (TLS must go through its wrapper; a thread's socket waits by its timeout)."""
    if is_gevent(sock) and type(sock) is gevent_module().socket.socket:
        raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        return raw
    return sock


def rlock_for(sock: socket.socket) -> Any:
    """A connection's write lock. Under gevent its own RLock: the monkey-patched
    threading.RLock is the pure-Python one around a gevent lock, twice the cost per frame."""
    if is_gevent(sock):
        return gevent_module().lock.RLock()
    return threading.RLock()


def call_later(sock: socket.socket, delay: float, fn: Callable[[], None]) -> None:
    """Run `fn` once after `delay` seconds: a libev timer under gevent (`fn` runs in the
    hub, so it must not block), a thread otherwise."""
    if is_gevent(sock):
        gevent_module().get_hub().loop.timer(delay).start(fn)  # the loop holds an active watcher
        return
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()


def _tls_pending(sock: socket.socket) -> Callable[[], int] | None:
    """TLS: how many decrypted bytes wait that the fd does not show (None: plain TCP)."""
    if getattr(type(sock), "pending", None) is None:  # (on the class: gevent's instance
        return None  # __getattr__ made each failed lookup a delegation and an exception)
    pending: Callable[[], int] = sock.pending  # type: ignore[attr-defined]
    return pending


class PollInput:
    __slots__ = ("_sock", "_pending")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._pending = _tls_pending(sock)

    def wait(self, until: float, unhurried: bool = False, side: HubSide | None = None) -> bool:
        if self._pending is not None and self._pending():
            return True
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(max(0, int((until - time.monotonic()) * 1000) + 1)))

    def hurry(self) -> None:
        pass

    def close(self) -> None:
        pass


class Wheel:
    """Readers' deadlines of one gevent hub, in slots of TICK seconds."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._slots: dict[int, set[GeventInput]] = {}
        #: every slot up to this one was swept
        self._swept = math.floor(time.monotonic() / TICK)
        self._timer = hub.loop.timer(TICK, TICK)
        self._timer.start(self._sweep)

    def slot(self, until: float) -> int:
        return max(math.ceil(until / TICK), self._swept + 1)

    def park(self, reader: GeventInput, slot: int) -> None:
        self._slots.setdefault(slot, set()).add(reader)

    def unpark(self, reader: GeventInput, slot: int) -> None:
        readers = self._slots.get(slot)
        if readers is not None:
            readers.discard(reader)
            if not readers:
                del self._slots[slot]

    def _sweep(self) -> None:
        """In the hub: expire every reader whose slot is due (a waiting one runs until it
        blocks again, then the sweep goes on)."""
        now = math.floor(time.monotonic() / TICK)
        while self._swept < now:
            self._swept += 1
            for reader in self._slots.pop(self._swept, ()):
                reader.expire()


def wheel() -> Wheel:
    """This worker's wheel."""
    return of_this_hub(Wheel)


class GeventInput:
    """One connection's readability watcher, kept for the connection's life.

    A wait switches to the hub and back, with no Waiter or Timeout object per wait. A reader
    stays parked in its deadline's slot after a wake-up by input: a relaying connection
    waits again and again for the same deadline (its next ping), so most waits touch the
    wheel not at all. When the slot comes due the reader is expired: woken with False if it
    is waiting then (receive() checks the clock and goes on), forgotten otherwise.

    An unhurried wait's input is deferred to a quiet moment of the loop (Turns): the reader
    is woken then, with True.

    With a `side` (the connection, for the wait), an idle reader's ping is sent from the hub
    when its slot comes due and its pong is read there: the reader sleeps through both. Woken
    for them, a ping cycle cost two greenlet switches, a Turns deferral and an epoll_ctl pair
    (~32 us of the worker; 500 a second at 15,000 idle, one every 30 s each); now ~17 us."""

    __slots__ = (
        "_pending", "_io", "_wheel", "_slot", "_waiting", "_deferred", "_getcurrent", "_side", "_unhurried",
    )  # fmt: skip

    def __init__(self, sock: socket.socket) -> None:
        #: the waiting reader's HubSide (only while it waits: no cycle outlives the wait)
        self._side: HubSide | None = None
        self._unhurried = False
        self._pending = _tls_pending(sock)
        self._wheel = wheel()
        self._io = self._wheel.hub.loop.io(sock.fileno(), 1)
        #: the deadline slot this reader is parked in (None: not parked)
        self._slot: int | None = None
        #: the greenlet waiting in wait() (None: nobody waits)
        self._waiting: Any = None
        #: input came for the waiting reader, which is woken at a quiet moment
        self._deferred = False
        self._getcurrent = gevent_module().getcurrent

    def wait(self, until: float, unhurried: bool = False, side: HubSide | None = None) -> bool:
        if self._pending is not None and self._pending():
            return True
        wheel = self._wheel
        slot = wheel.slot(until)
        if slot != self._slot:
            if self._slot is not None:
                wheel.unpark(self, self._slot)
            wheel.park(self, slot)
            self._slot = slot
        self._waiting = self._getcurrent()
        self._unhurried = unhurried
        self._side = side
        self._arm()
        try:
            return bool(wheel.hub.switch())
        finally:
            self._io.stop()
            self._waiting = None
            self._side = None
            self._deferred = False

    def _arm(self) -> None:
        """Watch for input, to wake the waiting reader as its wait asked (a pong awaited:
        to read it in the hub first)."""
        if self._side is not None and self._side.awaits_pong:
            self._io.start(self._maybe_pong)
        elif self._unhurried:
            self._io.start(self._defer)
        else:
            self._io.start(self._waiting.switch, True)

    def _maybe_pong(self) -> None:
        """In the hub: input while a pong is awaited. All pongs: the reader sleeps on;
        anything else wakes it as its wait asked."""
        assert self._side is not None
        if self._side.pong_in_hub():
            if not self._side.awaits_pong:  # (its next input: no longer read here)
                self._io.stop()
                self._arm()
            return
        if self._unhurried:
            self._defer()
        else:
            self._waiting.switch(True)

    def _defer(self) -> None:
        """In the hub: input for an unhurried reader, which reads it at a quiet moment."""
        self._io.stop()
        self._deferred = True
        turns().defer(self._resume)

    def _resume(self) -> None:
        """In the hub: the deferred reader's turn (or it was hurried)."""
        if self._deferred and self._waiting is not None:
            self._deferred = False
            self._waiting.switch(True)

    def hurry(self) -> None:
        if self._waiting is None:
            return
        self._unhurried = False
        if self._deferred:  # its input is here: wake it now, not at its turn
            self._wheel.hub.loop.run_callback(self._resume)
        else:
            self._io.stop()
            self._io.start(self._waiting.switch, True)

    def expire(self) -> None:
        """In the hub: this reader's slot came due."""
        self._slot = None
        if self._waiting is not None and not self._deferred:  # (deferred: woken with True soon)
            until = self._side.due_in_hub() if self._side is not None else None
            if until is None:
                self._waiting.switch(False)
                return
            wheel = self._wheel
            self._slot = wheel.slot(until)
            wheel.park(self, self._slot)
            self._io.stop()
            self._arm()  # its pong is read here

    def close(self) -> None:
        if self._slot is not None:
            self._wheel.unpark(self, self._slot)
            self._slot = None
        self._io.close()

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

import functools
import math
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

#: seconds per slot of the wheel (how late a deadline may fire)
TICK = 0.25


class Input(Protocol):
    def wait(self, until: float, unhurried: bool = False) -> bool:
        """True when the socket has input (or EOF), False once `until` (monotonic) passed.
        `unhurried`: input may wait for a quiet moment (under gevent, see Turns)."""

    def hurry(self) -> None:
        """The reader waiting now is no longer unhurried."""

    def close(self) -> None: ...


@functools.cache
def _gevent() -> Any:
    """gevent, with the parts used here loaded: imported once, on first use under gevent
    (a server on threads never loads it; an import statement per connection cost ~1 us)."""
    import gevent
    import gevent.lock
    import gevent.socket

    return gevent


def _is_gevent(sock: socket.socket) -> bool:
    return type(sock).__module__.startswith("gevent")


def input_for(sock: socket.socket) -> Input:
    return GeventInput(sock) if _is_gevent(sock) else PollInput(sock)


def os_socket(sock: socket.socket) -> socket.socket:
    """The socket to try a send or recv on first. Under gevent, for plain TCP, the OS
    socket inside gevent's wrapper (non-blocking): a call that need not wait skips gevent's
    Python layer (~0.6 us a send, ~0.9 us a recv); one that would wait raises
    BlockingIOError, and the caller waits through the wrapper. Otherwise `sock` itself
    (TLS must go through its wrapper; a thread's socket waits by its timeout)."""
    if _is_gevent(sock) and type(sock) is _gevent().socket.socket:
        raw: socket.socket = sock._sock  # type: ignore[attr-defined]
        return raw
    return sock


def rlock_for(sock: socket.socket) -> Any:
    """A connection's write lock. Under gevent its own RLock: the monkey-patched
    threading.RLock is the pure-Python one around a gevent lock, twice the cost per frame."""
    if _is_gevent(sock):
        return _gevent().lock.RLock()
    return threading.RLock()


def call_later(sock: socket.socket, delay: float, fn: Callable[[], None]) -> None:
    """Run `fn` once after `delay` seconds: a libev timer under gevent (`fn` runs in the
    hub, so it must not block), a thread otherwise."""
    if _is_gevent(sock):
        _gevent().get_hub().loop.timer(delay).start(fn)  # the loop holds an active watcher
        return
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()


def _patched() -> bool:
    """Running under gevent's monkey patches (the server's worker), not on threads."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class _HubBound(Protocol):
    hub: Any


H = TypeVar("H", bound=_HubBound)

#: each kind's one instance for the current hub (a fork or a new hub makes a fresh one)
_per_hub: dict[Callable[[Any], Any], Any] = {}


def _of_this_hub(kind: Callable[[Any], H]) -> H:
    """The one `kind` of this worker's hub, made on first use (after the fork, in the
    hub's thread)."""
    hub = _gevent().get_hub()
    own: H | None = _per_hub.get(kind)
    if own is None or own.hub is not hub:
        own = _per_hub[kind] = kind(hub)
    return own


#: longest a worker waits for a quiet moment: work that can wait still moves on a loop that
#: is never idle (deferred reads include pongs, due within the ping interval)
QUIET_AT_MOST = 0.05

#: the least share of its time a worker gives its background work (see background_share)
MIN_BACKGROUND_SHARE = 0.25
#: the share of this worker's time its background work (deferred reads, the teardown)
#: takes while it has some (the gevent worker sets it from the host; see Pace)
_share = MIN_BACKGROUND_SHARE


def background_share(workers: int, cores: int) -> float:
    """The share of its time each of `workers` processes on `cores` CPUs may give its
    background work: together they leave one core to everything else (Redis, new
    connections, their clients on this host); at least MIN_BACKGROUND_SHARE, and all of
    it for a worker with a core to spare (one worker on two cores: no rest at all)."""
    return max(MIN_BACKGROUND_SHARE, min(1.0, (cores - 1) / max(1, workers)))


def set_background_share(share: float) -> None:
    """This process's background share (a worker, at start)."""
    global _share
    _share = min(1.0, max(MIN_BACKGROUND_SHARE, share))


def rest_per_work() -> float:
    """Seconds background work rests per second it ran."""
    return (1 - _share) / _share


class Pace:
    """One gevent hub's background work, held to its share of the worker's time.

    After a mass close every worker has thousands of EOFs to wind down and sessions to end.
    Run back to back whenever the loop was idle, that work kept each worker busy, so on a
    host with fewer cores than workers the kernel shared the CPU out in slices: a new
    connection waited for its worker's next slice, and its hello and join for Redis's,
    behind the other workers' teardowns (first session after closing 50,000 on 4 workers
    and 2 cores: 0.65-1.1 s). Here each batch of background work earns a rest in
    proportion, during which that work waits with the loop blocked in epoll: the CPU is
    left to whatever else wants it, and a worker woken from that sleep by a new
    connection gets the CPU at once. A batch of (TURN deferred reads, a teardown slice)
    takes a few ms, so new work waits at most one batch. The price: where workers
    outnumber the spare cores, background work goes at its share of its speed even when
    nothing else runs (4 workers on 2 cores: a quarter; a teardown of 12,500 takes
    seconds, not one).
    """

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        #: monotonic time until which background work rests
        self._rest_until = 0.0

    def spent(self, started: float) -> None:
        """Background work ran from `started` (monotonic) until now."""
        now = time.monotonic()
        self._rest_until = now + (now - started) * rest_per_work()

    def rest_left(self) -> float:
        """Seconds background work still rests (<= 0: it may run)."""
        return self._rest_until - time.monotonic()

    def rest_timer(self, seconds: float) -> Any:
        """A one-shot timer for `seconds` from now (the loop's cached time is brought up to
        date first: a rest never ends early)."""
        loop = self.hub.loop
        loop.update_now()
        return loop.timer(seconds)


def pace() -> Pace:
    """This worker's Pace."""
    return _of_this_hub(Pace)


def background_rest() -> float:
    """Seconds this worker's background work should still rest (Pace; 0 under threads)."""
    return max(0.0, pace().rest_left()) if _patched() else 0.0


def background_ran(started: float) -> None:
    """Background work ran from `started` (monotonic) until now: counted in this worker's
    Pace (under threads, nothing)."""
    if _patched():
        pace().spent(started)


def give_way() -> None:
    """Let every other ready piece of work run first. Under gevent: until the hub has
    nothing else pending (an idle watcher: connections being read, accepted or written to
    all go before), or QUIET_AT_MOST; under threads: the GIL to whoever wants it."""
    if not _patched():
        time.sleep(0)
        return
    gevent = _gevent()
    loop = gevent.get_hub().loop
    waiter = gevent.hub.Waiter()
    idle, timer = loop.idle(), loop.timer(QUIET_AT_MOST)
    idle.start(waiter.switch, None)
    timer.start(waiter.switch, None)
    try:
        waiter.get()
    finally:
        idle.close()
        timer.close()


#: deferred reads let through per quiet moment of the loop (or per QUIET_AT_MOST)
TURN = 64


class Turns:
    """Work that can wait for a quiet moment of one gevent hub, run `TURN` at a time.

    When thousands of clients leave at once, their sockets are all readable before a new
    connection's is (epoll reports them in that order), and every handler waking to read
    its EOF and wind down (closing its socket, counting, logging) came before the new
    connection's hello: up to seconds of a worker. An unhurried reader's input (see
    `GeventInput`) is noted here instead, at the cost of a callback in the hub; an idle
    watcher runs `TURN` of them each time the loop has nothing else pending, so whatever
    arrives meanwhile is served in between (and a timer every QUIET_AT_MOST, so a loop
    that is never idle still gets to them). They are background work: between two turns
    they rest as `Pace` says."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._queue: deque[Callable[[], None]] = deque()
        self._idle = hub.loop.idle()
        self._timer = hub.loop.timer(QUIET_AT_MOST, QUIET_AT_MOST)
        self._pace = pace()
        #: the one-shot timer of a rest in progress (None: not resting)
        self._resting: Any = None

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the hub at a quiet moment (in order); it must not block (it may
        switch to a greenlet that runs until it waits again)."""
        self._queue.append(fn)
        if not self._idle.active and self._resting is None:
            self._idle.start(self._run)
            self._timer.start(self._run)

    def _run(self) -> None:
        self._idle.stop()
        self._timer.stop()
        rest = self._pace.rest_left()  # (a teardown slice may have run meanwhile)
        if rest <= 0:
            started = time.monotonic()
            for _ in range(min(TURN, len(self._queue))):
                self._queue.popleft()()
            self._pace.spent(started)
            if not self._queue:
                return
            rest = self._pace.rest_left()
        self._resting = self._pace.rest_timer(rest)
        self._resting.start(self._rested)

    def _rested(self) -> None:
        self._resting = None
        if self._queue:
            self._idle.start(self._run)
            self._timer.start(self._run)


def turns() -> Turns:
    """This worker's Turns."""
    return _of_this_hub(Turns)


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

    def wait(self, until: float, unhurried: bool = False) -> bool:
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
    return _of_this_hub(Wheel)


class GeventInput:
    """One connection's readability watcher, kept for the connection's life.

    A wait switches to the hub and back, with no Waiter or Timeout object per wait. A reader
    stays parked in its deadline's slot after a wake-up by input: a relaying connection
    waits again and again for the same deadline (its next ping), so most waits touch the
    wheel not at all. When the slot comes due the reader is expired: woken with False if it
    is waiting then (receive() checks the clock and goes on), forgotten otherwise.

    An unhurried wait's input is deferred to a quiet moment of the loop (Turns): the reader
    is woken then, with True."""

    __slots__ = ("_pending", "_io", "_wheel", "_slot", "_waiting", "_deferred", "_getcurrent")

    def __init__(self, sock: socket.socket) -> None:
        self._pending = _tls_pending(sock)
        self._wheel = wheel()
        self._io = self._wheel.hub.loop.io(sock.fileno(), 1)
        #: the deadline slot this reader is parked in (None: not parked)
        self._slot: int | None = None
        #: the greenlet waiting in wait() (None: nobody waits)
        self._waiting: Any = None
        #: input came for the waiting reader, which is woken at a quiet moment
        self._deferred = False
        self._getcurrent = _gevent().getcurrent

    def wait(self, until: float, unhurried: bool = False) -> bool:
        if self._pending is not None and self._pending():
            return True
        wheel = self._wheel
        slot = wheel.slot(until)
        if slot != self._slot:
            if self._slot is not None:
                wheel.unpark(self, self._slot)
            wheel.park(self, slot)
            self._slot = slot
        waiting = self._waiting = self._getcurrent()
        if unhurried:
            self._io.start(self._defer)
        else:
            self._io.start(waiting.switch, True)
        try:
            return bool(wheel.hub.switch())
        finally:
            self._io.stop()
            self._waiting = None
            self._deferred = False

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
        if self._deferred:  # its input is here: wake it now, not at its turn
            self._wheel.hub.loop.run_callback(self._resume)
        else:
            self._io.stop()
            self._io.start(self._waiting.switch, True)

    def expire(self) -> None:
        """In the hub: this reader's slot came due."""
        self._slot = None
        if self._waiting is not None and not self._deferred:  # (deferred: woken with True soon)
            self._waiting.switch(False)

    def close(self) -> None:
        if self._slot is not None:
            self._wheel.unpark(self, self._slot)
            self._slot = None
        self._io.close()

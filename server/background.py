"""A worker's background work: what can wait (an unhurried reader's input, the teardown of
sessions whose clients left) runs at quiet moments of the hub (`Turns`, `give_way`) and
takes at most its share of the worker's time (`Pace`, `background_share`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from server.hub import gevent_module, of_this_hub, under_gevent

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
    return of_this_hub(Pace)


def background_rest() -> float:
    """Seconds this worker's background work should still rest (Pace; 0 under threads)."""
    return max(0.0, pace().rest_left()) if under_gevent() else 0.0


def background_ran(started: float) -> None:
    """Background work ran from `started` (monotonic) until now: counted in this worker's
    Pace (under threads, nothing)."""
    if under_gevent():
        pace().spent(started)


def give_way() -> None:
    """Let every other ready piece of work run first. Under gevent: until the hub has
    nothing else pending (an idle watcher: connections being read, accepted or written to
    all go before), or QUIET_AT_MOST; under threads: the GIL to whoever wants it."""
    if not under_gevent():
        time.sleep(0)
        return
    gevent = gevent_module()
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
    return of_this_hub(Turns)

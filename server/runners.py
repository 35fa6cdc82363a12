"""The worker's connection pool: greenlets that serve one connection after another.

A new greenlet per connection cost the worker ~15-20 us beyond the handler: the Greenlet
object and its links, and under Python 3.11 the 16 KiB frame stack each new greenlet maps
for its first Python frame (mmap, four page faults) and unmaps when it ends (munmap). Two
or three connections per exchange paid that (perf trace: one mmap and one munmap per
connection). Here a greenlet whose handler returned parks, up to IDLE_MAX of them, and the
next connection runs on it.

`ReusingPool` keeps gevent's Pool contract, which gevent's StreamServer and the worker rely
on: `spawn` waits for room, `full()`/`free_count()` count connections being served, `join()`
waits until none is, `kill()` ends those being served. Parked greenlets are not members.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from gevent import GreenletExit, get_hub, getcurrent
from gevent.greenlet import Greenlet
from gevent.pool import Pool

#: greenlets kept parked for the next connection (a burst beyond it makes new ones)
IDLE_MAX = 64


class ReusingPool(Pool):  # type: ignore[misc]
    def __init__(self, size: int | None = None) -> None:
        super().__init__(size)
        self._idle: list[tuple[Greenlet, _Box]] = []
        #: greenlets made so far (tests and figures: reuse keeps it near the concurrency)
        self.made = 0

    def spawn(self, func: Callable[..., Any], *args: Any) -> Greenlet:  # type: ignore[override]
        """Run `func(*args)` on a parked greenlet, or a new one; waits for room as
        Pool.spawn does (the hub must check `full()` first)."""
        self._semaphore.acquire()
        if self._idle:
            runner, box = self._idle.pop()
            box.job = (func, args)
            get_hub().loop.run_callback(runner.switch)  # parked: resumes at the loop's next turn
        else:
            box = _Box()
            box.job = (func, args)
            runner = Greenlet(_serve, self, box)
            self.made += 1
            runner.start()
        self.greenlets.add(runner)
        self._empty_event.clear()
        return runner

    def _done(self, runner: Greenlet) -> None:
        """`runner`'s job ended (returned, raised or was killed)."""
        self.greenlets.discard(runner)
        self.dying.discard(runner)
        self._semaphore.release()
        if not self.greenlets:
            self._empty_event.set()

    def _park(self, runner: Greenlet, box: _Box) -> bool:
        if len(self._idle) >= IDLE_MAX:
            return False
        self._idle.append((runner, box))
        return True

    def _unpark(self, runner: Greenlet) -> None:
        self._idle = [entry for entry in self._idle if entry[0] is not runner]


class _Box:
    """A parked greenlet's next job. (A slot, not attributes on the greenlet: those would
    give every greenlet held by a connection an instance dict.)"""

    __slots__ = ("job",)

    def __init__(self) -> None:
        self.job: tuple[Callable[..., Any], tuple[Any, ...]] | None = None


def _serve(pool: ReusingPool, box: _Box) -> None:
    """A pool greenlet's life: the job it is given, then parked for the next."""
    hub = get_hub()
    me = getcurrent()
    while True:
        job, box.job = box.job, None
        if job is None:  # woken by something stale from an earlier job: park again
            hub.switch()
            continue
        func, args = job
        del job
        try:
            _call(func, args)
        except GreenletExit:
            raise  # killed (Pool.kill): this greenlet ends
        except BaseException:  # noqa: BLE001 - reported as gevent reports a greenlet's
            hub.handle_error(me, *sys.exc_info())
        finally:
            pool._done(me)
        del func, args  # a parked greenlet holds nothing of its last connection
        if not pool._park(me, box):
            return
        try:
            hub.switch()  # parked until spawn() gives it a job
        except BaseException:
            pool._unpark(me)
            raise


def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """func(*args), by arity: a call with a fixed number of arguments runs in the caller's
    interpreter frame loop, where `func(*args)` enters a new one on the C stack, which the
    greenlet then saves whenever it waits (~0.5 KiB more per connection held)."""
    match args:
        case (a, b, c):  # gevent's StreamServer: (handle, close, (client, address))
            func(a, b, c)
        case (a, b):  # server.handoff: (client, offer)
            func(a, b)
        case _:
            func(*args)

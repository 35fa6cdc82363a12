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

from gevent import GreenletExit, get_hub
from gevent.greenlet import Greenlet
from gevent.pool import Pool

#: greenlets kept parked for the next connection (a burst beyond it makes new ones)
IDLE_MAX = 64


class ReusingPool(Pool):  # type: ignore[misc]
    def __init__(self, size: int | None = None) -> None:
        super().__init__(size)
        self._idle: list[_Runner] = []
        #: greenlets made so far (tests and figures: reuse keeps it near the concurrency)
        self.made = 0

    def spawn(self, func: Callable[..., Any], *args: Any) -> Greenlet:  # type: ignore[override]
        """Run `func(*args)` on a parked greenlet, or a new one; waits for room as
        Pool.spawn does (the hub must check `full()` first)."""
        self._semaphore.acquire()
        if self._idle:
            runner = self._idle.pop()
        else:
            runner = _Runner(self)
            self.made += 1
        self.greenlets.add(runner)
        self._empty_event.clear()
        runner.give(func, args)
        return runner

    def _done(self, runner: _Runner) -> None:
        """`runner`'s job ended (returned, raised or was killed)."""
        self.greenlets.discard(runner)
        self.dying.discard(runner)
        self._semaphore.release()
        if not self.greenlets:
            self._empty_event.set()

    def _park(self, runner: _Runner) -> bool:
        if len(self._idle) >= IDLE_MAX:
            return False
        self._idle.append(runner)
        return True

    def _unpark(self, runner: _Runner) -> None:
        if runner in self._idle:
            self._idle.remove(runner)


class _Runner(Greenlet):  # type: ignore[misc]
    """A pool's greenlet: runs the job it is given, then parks for the next."""

    def __init__(self, pool: ReusingPool) -> None:
        super().__init__()
        self._pool = pool
        self._job: tuple[Callable[..., Any], tuple[Any, ...]] | None = None

    def give(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._job = (func, args)
        if self.started:
            get_hub().loop.run_callback(self.switch)  # parked: resumes at the loop's next turn
        else:
            self.start()

    def _run(self) -> None:  # (Greenlet.run calls it)
        hub = get_hub()
        while True:
            job, self._job = self._job, None
            if job is None:  # woken by something stale from an earlier job: park again
                hub.switch()
                continue
            func, args = job
            try:
                func(*args)
            except GreenletExit:
                raise  # killed (Pool.kill): this greenlet ends
            except BaseException:  # noqa: BLE001 - reported as gevent reports a greenlet's
                hub.handle_error(self, *sys.exc_info())
            finally:
                self._pool._done(self)
            if not self._pool._park(self):
                return
            try:
                hub.switch()  # parked until give()
            except BaseException:
                self._pool._unpark(self)
                raise

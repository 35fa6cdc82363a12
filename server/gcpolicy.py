"""The worker's cyclic garbage collector, shaped for a heap of long-lived connections.

Nearly everything a connection allocates is freed by reference counting when it ends;
the cyclic collector found ~450 objects of cyclic garbage over 15,000 idle senders, 100
exchanges and a mass close. Yet CPython runs a full (generation 2) pass each time the
surviving heap grew by a quarter, and a full pass walks every live container: ~55 per idle
connection, 850,000 at 15,000 held, 150-320 ms with the hub stopped (gc callbacks, load
~2). Accepting 15,000 cost ten such passes, 1.5 s of the worker's CPU, and any exchange in
flight waited for each.

So survivors are frozen (`gc.freeze()`: moved out of every generation, O(1)) once a second;
the collector then only ever walks what was allocated since. Cyclic garbage among frozen
objects is reclaimed by a full pass (unfreeze, collect, freeze again) every `RECLAIM_EVERY`
seconds, but only while the worker holds at most `RECLAIM_MAX_HELD` connections: at 15,000
held such a pass stopped the hub for 169-203 ms (659,000 frozen objects, load ~4) and
collected nothing, twice; every exchange in flight would have waited for it. A busy worker
postpones the pass until it is small again (a mass close, a quiet night): what it keeps
meanwhile is the rare cycle that died frozen (~450 objects over a whole 15,000-sender run).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sp2p.server")

#: seconds between freezes of the surviving heap
FREEZE_EVERY = 1.0
#: seconds between full passes over the frozen heap (reclaims its cyclic garbage)
RECLAIM_EVERY = 600.0
#: most connections held for a full pass to run (~12 ms of pause per 1,000 held)
RECLAIM_MAX_HELD = 4000


class GcPolicy:
    """`tick()` once a second (from a timer in the hub); `start()` after the app loaded.
    `held()` tells how many connections the worker holds (O(1): it is asked every tick
    while a pass is due)."""

    def __init__(
        self,
        reclaim_every: float = RECLAIM_EVERY,
        clock: Any = time.monotonic,
        held: Callable[[], int] = lambda: 0,
        max_held: int = RECLAIM_MAX_HELD,
    ) -> None:
        self._reclaim_every = reclaim_every
        self._clock = clock
        self._held = held
        self._max_held = max_held
        self._next_reclaim = clock() + reclaim_every

    def start(self) -> None:
        """Freeze the booted heap (modules, the app): no pass needs to walk it again."""
        gc.collect()
        gc.freeze()

    def tick(self) -> None:
        if self._clock() >= self._next_reclaim and self._held() <= self._max_held:
            self.reclaim()
        else:
            gc.freeze()

    def reclaim(self) -> int:
        """One full pass over everything, frozen or not; returns the objects collected."""
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self._next_reclaim = self._clock() + self._reclaim_every
        if log.isEnabledFor(logging.DEBUG):  # get_freeze_count() walks the frozen list
            log.debug(
                "full gc pass: %d collected, %.0f ms, %d frozen",
                collected, (time.perf_counter() - started) * 1e3, gc.get_freeze_count(),
            )  # fmt: skip
        return collected

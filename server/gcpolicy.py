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
objects is reclaimed by one full pass every `RECLAIM_EVERY` seconds (unfreeze, collect,
freeze again) — a bounded leak for one bounded pause per interval instead of a pause per
quarter of growth.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger("sp2p.server")

#: seconds between freezes of the surviving heap
FREEZE_EVERY = 1.0
#: seconds between full passes over the frozen heap (reclaims its cyclic garbage)
RECLAIM_EVERY = 600.0


class GcPolicy:
    """`tick()` once a second (from a timer in the hub); `start()` after the app loaded."""

    def __init__(self, reclaim_every: float = RECLAIM_EVERY, clock: Any = time.monotonic) -> None:
        self._reclaim_every = reclaim_every
        self._clock = clock
        self._next_reclaim = clock() + reclaim_every

    def start(self) -> None:
        """Freeze the booted heap (modules, the app): no pass needs to walk it again."""
        gc.collect()
        gc.freeze()

    def tick(self) -> None:
        if self._clock() >= self._next_reclaim:
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
        log.debug(
            "full gc pass: %d collected, %.0f ms, %d frozen",
            collected, (time.perf_counter() - started) * 1e3, gc.get_freeze_count(),
        )  # fmt: skip
        return collected

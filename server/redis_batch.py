"""Calls that many connections make at the same moment, sent to Redis together.

When thousands of clients leave at once, every handler ends its session in the same few
turns of gevent's loop; one Redis round trip each (plus redis-py's per-command work) was
most of a worker's teardown. A `Batched` call lets the first caller send what has gathered
in one pipeline while later callers wait for their answer; a caller alone goes straight
through, so a quiet server pays nothing. The leader sends one batch and hands the next to
a waiting caller, so no handler serves others' calls for long.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")

#: calls per pipeline: enough to fold a mass disconnect, short enough that Redis serves
#: other clients in between
MAX_BATCH = 256


class _Slot(Generic[A, R]):
    __slots__ = ("answered", "arg", "error", "result", "wake")

    def __init__(self, arg: A) -> None:
        self.arg = arg
        #: set when answered, or when this caller is handed the lead
        self.wake = threading.Event()
        self.answered = False
        self.result: R | None = None
        self.error: BaseException | None = None


class Batched(Generic[A, R]):
    """`call(arg)` answers like `run_many([arg])[0]`, folding concurrent calls into one
    `run_many` (which answers in order and raises only for the whole batch)."""

    def __init__(self, run_many: Callable[[Sequence[A]], Sequence[R]]) -> None:
        self._run_many = run_many
        self._lock = threading.Lock()
        #: callers waiting, in arrival order; never empty while a leader works
        self._pending: list[_Slot[A, R]] = []
        self._busy = False

    def call(self, arg: A) -> R:
        return self.call_many((arg,))[0]

    def call_many(self, args: Sequence[A]) -> list[R]:
        """`call` for each of `args`, queued together (so they share a pipeline, up to
        MAX_BATCH at a time); raises the first failure once every call is answered or left
        (a caller killed while it waits, by a greenlet's timeout, leaves the queue)."""
        slots: list[_Slot[A, R]] = [_Slot(arg) for arg in args]
        if not slots:
            return []
        with self._lock:
            self._pending.extend(slots)
            lead, self._busy = not self._busy, True
        try:
            for i, slot in enumerate(slots):
                if not (lead and i == 0):  # else ours is first in, and leads at once
                    slot.wake.wait()
                if not slot.answered:  # handed the lead: ours is in the next batch
                    self._lead()
        except BaseException:
            for slot in slots:
                self._leave(slot)
            raise
        for slot in slots:
            if slot.error is not None:
                raise slot.error
        return [slot.result for slot in slots]  # type: ignore[misc]

    def _leave(self, slot: _Slot[A, R]) -> None:
        """Take an unanswered caller out; if it had been handed the lead, pass it on."""
        with self._lock:
            if slot.answered or slot not in self._pending:
                return
            handed = self._pending[0] is slot and slot.wake.is_set()
            self._pending.remove(slot)
            if handed:
                self._hand_on()

    def _hand_on(self) -> None:
        """With the lock held: wake the next caller to lead, or stand down."""
        if self._pending:
            self._pending[0].wake.set()  # not answered: it leads the next batch
        else:
            self._busy = False

    def _lead(self) -> None:
        """Send one batch (the leader's call first in it), then hand the lead on."""
        with self._lock:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        try:
            results = self._run_many([s.arg for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} answers for {len(batch)} calls")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:  # every caller of the batch sees the failure
            for slot in batch:
                slot.error = exc
        finally:
            for slot in batch:
                slot.answered = True
                slot.wake.set()
            with self._lock:
                self._hand_on()

"""Relayed frames held while one reader works through what arrived together, then sent with
one write per target connection (server.connection.Peer.send_text asks `holding_batch()`)."""

from __future__ import annotations

import threading
from typing import Protocol


class HeldWrites(Protocol):
    """A connection a batch holds frames for (server.connection.Peer)."""

    def flush_held(self) -> None: ...


def holding_batch() -> WriteBatch | None:
    """The batch the calling greenlet (thread) holds writes for, if any."""
    return _batches.get(threading.get_ident()) if _batches else None


#: thread (greenlet under gevent) id -> the WriteBatch it is holding writes for
_batches: dict[int, WriteBatch] = {}


class WriteBatch:
    """Relayed frames held while one reader works through messages that arrived together,
    then sent with one write per target: a sender's offer, candidates and direct address
    usually arrive in one read, and were as many send() calls (and wake-ups of the other
    client); ~3 messages per read in the exchange benchmark. Order is kept: any other
    write to a target sends what is held for it first."""

    __slots__ = ("targets",)

    def __init__(self) -> None:
        self.targets: list[HeldWrites] = []

    def holding(self) -> _Holding:
        """Hold this greenlet's text frames to other connections until flush()."""
        return _Holding(self)

    def flush(self) -> None:
        targets, self.targets = self.targets, []
        for peer in targets:
            peer.flush_held()


class _Holding:
    """WriteBatch.holding()'s context (a class: contextlib's generator-based one cost
    ~1.3 % of the worker, entered once per read that carried several messages)."""

    __slots__ = ("batch", "ident", "outer")

    def __init__(self, batch: WriteBatch) -> None:
        self.batch = batch
        self.ident = 0
        self.outer: WriteBatch | None = None

    def __enter__(self) -> None:
        self.ident = ident = threading.get_ident()
        self.outer = _batches.get(ident)
        _batches[ident] = self.batch

    def __exit__(self, *exc: object) -> None:
        if self.outer is None:
            del _batches[self.ident]
        else:  # nested (a teardown inside a relay): the outer batch holds again
            _batches[self.ident] = self.outer

"""Operator metrics in the Prometheus text format (`GET /metrics`).

One `Metrics` per app, on its own registry (tests build many apps in one process). With
several gunicorn workers the parent sets PROMETHEUS_MULTIPROC_DIR before forking (see
server.gunicorn_app) and prometheus_client's multiprocess mode sums the workers' files;
gauges use `livesum`, so a dead worker's connections drop out. Session gauges count what
happened on this node: with several nodes a session may open on one and end on another,
so sum them over nodes.

The counts every exchange makes (connections, sessions, messages: ~10 per exchange) are
queued and added to prometheus_client's values once per `SYNC_EVERY` by a timer: each of
its updates takes a lock, checks the pid and, with several workers, writes an mmap'd file
(3.5 us; ~55 us per exchange, 2 % of a Redis worker's CPU). A scrape sees them at most that
late (scrapes come every 15 s or more); one answered by this process sees them at once.
Refusals, TURN credentials and handoffs go straight through (one a session at most).
"""

from __future__ import annotations

import os
import threading
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: seconds a queued count may wait before it reaches the shared values
SYNC_EVERY = 1.0

_Hot = Gauge | Counter


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self, sync_every: float = SYNC_EVERY) -> None:
        self._sync_every = sync_every
        #: (metric, amount) not yet added; deque: appends and pops are atomic across threads
        self._pending: deque[tuple[_Hot, int]] = deque()
        self._timer: threading.Timer | None = None
        self._registry = CollectorRegistry(auto_describe=True)
        reg = None if multiprocess() else self._registry
        self.connections = Gauge(
            "sp2p_open_connections", "Open signalling WebSockets", registry=reg, multiprocess_mode="livesum"
        )
        self.waiting = Gauge(
            "sp2p_waiting_sessions",
            "Sessions whose sender waits for a receiver",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.paired = Gauge(
            "sp2p_paired_sessions", "Sessions with both peers", registry=reg, multiprocess_mode="livesum"
        )
        self.messages = Counter("sp2p_messages_relayed", "Signalling messages relayed", registry=reg)
        self.refusals = Counter(
            "sp2p_refusals", "Connections or sessions refused, by reason", ["reason"], registry=reg
        )
        self.turn = Counter("sp2p_turn_credentials_issued", "TURN credentials issued", registry=reg)
        self.handoffs = Counter(
            "sp2p_handoffs",
            "Receivers offered to their sender's worker on this host (server.handoff), by outcome",
            ["outcome"],
            registry=reg,
        )

    # -- events (called by server.ws) ---------------------------------------------------
    def connection(self, delta: int) -> None:
        self._add(self.connections, delta)

    def session_opened(self) -> None:
        self._add(self.waiting, 1)

    def session_paired(self) -> None:
        self._add(self.waiting, -1)
        self._add(self.paired, 1)

    def session_ended(self, joined: bool) -> None:
        self._add(self.paired if joined else self.waiting, -1)

    def relayed(self, count: int = 1) -> None:
        self._add(self.messages, count)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason=str(reason)).inc()

    def turn_issued(self) -> None:
        self.turn.inc()

    def handoff(self, outcome: str) -> None:
        self.handoffs.labels(outcome=str(outcome)).inc()

    def _add(self, metric: _Hot, amount: int) -> None:
        self._pending.append((metric, amount))
        if self._timer is None:
            timer = self._timer = threading.Timer(self._sync_every, self.sync)
            timer.daemon = True
            timer.start()

    def sync(self) -> None:
        """Add what is queued to the values a scrape reads (summed per metric first)."""
        self._timer = None  # before draining: a count queued after the drain arms a new timer
        totals: dict[_Hot, int] = {}
        pending = self._pending
        while True:
            try:  # render() and the timer may drain at once
                metric, amount = pending.popleft()
            except IndexError:
                break
            totals[metric] = totals.get(metric, 0) + amount
        for metric, total in totals.items():
            if total:
                metric.inc(total)

    # -- exposition ---------------------------------------------------------------------
    def render(self) -> bytes:
        self.sync()
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._registry)

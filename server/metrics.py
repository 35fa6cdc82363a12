"""Operator metrics in the Prometheus text format (`GET /metrics`).

One `Metrics` per app, on its own registry (tests build many apps in one process). With
several gunicorn workers the parent sets PROMETHEUS_MULTIPROC_DIR before forking (see
server.gunicorn_app) and prometheus_client's multiprocess mode sums the workers' files;
gauges use `livesum`, so a dead worker's connections drop out. Session gauges count what
happened on this node: with several nodes a session may open on one and end on another,
so sum them over nodes.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self) -> None:
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
        self.connections.inc(delta)

    def session_opened(self) -> None:
        self.waiting.inc()

    def session_paired(self) -> None:
        self.waiting.dec()
        self.paired.inc()

    def session_ended(self, joined: bool) -> None:
        (self.paired if joined else self.waiting).dec()

    def relayed(self, count: int = 1) -> None:
        self.messages.inc(count)

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason=str(reason)).inc()

    def turn_issued(self) -> None:
        self.turn.inc()

    def handoff(self, outcome: str) -> None:
        self.handoffs.labels(outcome=str(outcome)).inc()

    # -- exposition ---------------------------------------------------------------------
    def render(self) -> bytes:
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._registry)

"""Everything one server process (a node) shares between requests, plus its background
tasks (threads, or greenlets under gevent): the reaper and the stats writer."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from typing import Any

from server.config import ServerConfig
from server.handoff import Handoff
from server.metrics import Metrics
from server.ratelimit import ConnectionCounter
from server.router import LocalRouter
from server.sessions import MemoryStore
from server.stats import Stats
from server.store import Router, SessionStore, StoreUnavailable
from server.teardown import Teardowns, end_session, expire_session, lost_session, redact
from sp2p.proto.constants import Role

#: how often a node beats (and looks for dead nodes); see server.redis_store for the TTL
HEARTBEAT_EVERY = 1.0
#: local sessions per step of the reaper's activity report; it yields between steps (one
#: worker holding 15,000 idle peers in memory: 190-500 ms of Python in one go, every pass)
REPORT_STEP = 1000

log = logging.getLogger("sp2p.server")


def _backend(config: ServerConfig, node: str) -> tuple[SessionStore, Router]:
    if config.redis_url:
        from server.redis_router import connect

        return connect(config, node, check=False)  # the CLI checked before the fork
    store = MemoryStore(max_sessions=config.max_sessions, max_sessions_per_ip=config.max_sessions_per_ip)
    return store, LocalRouter()


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        #: this process's name in the service (Redis channels, records, heartbeats)
        self.node = secrets.token_hex(6)
        self.store, self.router = _backend(config, self.node)
        stats_path = config.config_dir / "stats.json" if config.config_dir else None
        self.stats = Stats(self.store.counters(), stats_path, config.stats_interval)
        self.metrics = Metrics()
        self.ws_limiter = self.store.limiter("ws", config.rate_limit, 60.0)
        self.miss_limiter = self.store.limiter("miss", config.miss_limit, 60.0)
        self.turn_budget = self.store.limiter("turn", config.turn_per_ip_hour, 3600.0)
        self.connections = ConnectionCounter(config.effective_max_conns, config.max_conns_per_ip)
        #: every open WebSocket, so shutdown can close those without a session too
        self.peers: set[Any] = set()
        self.peers_lock = threading.Lock()
        #: sessions whose connection went away, ended behind new connections' work
        self.teardowns = Teardowns(self)
        #: receivers moved to their sender's worker on this host (shared store only)
        self.handoff = Handoff(self) if config.redis_url and config.handoff else None
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        #: (session, role) -> the peer activity last reported to the store
        self._touched: dict[tuple[str, str], float] = {}
        #: local connections whose session the store did not have at the last pass
        self._missing: set[tuple[str, str]] = set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        """Start the router, the reaper and the stats writer (idempotent)."""
        if self._reaper is not None:
            return
        self.router.start()
        self.stats.start()
        self._reaper = threading.Thread(target=self._reap_loop, name="sp2p-reaper", daemon=True)
        self._reaper.start()
        if self.config.redis_url:
            self._watcher = threading.Thread(target=self._watch_loop, name="sp2p-nodes", daemon=True)
            self._watcher.start()

    def _watch_loop(self) -> None:
        """Beat our heartbeat; end the sessions of nodes whose heartbeat expired, so their
        peers here and elsewhere hear `peer-left` (within the TTL plus one beat)."""
        failing = False
        first = True  # beat at once: a session may arrive before the first interval ends
        while first or not self._stop.wait(HEARTBEAT_EVERY):
            first = False
            try:
                self.store.heartbeat(self.node)
                for dead in self.store.dead_nodes(self.node):
                    try:
                        self.sweep_node(dead)
                    except StoreUnavailable:
                        raise
                    except Exception:  # one node's failed sweep must not strand the others' claims
                        log.exception("sweeping a dead node failed; retried when its claim expires")
                if failing:
                    log.info("redis reachable again")
                failing = False
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("node heartbeat failed: %s", exc)
                failing = True
            except Exception:
                log.exception("node watch pass failed")

    def sweep_node(self, dead: str) -> None:
        for session_id in self.store.sessions_of(dead):
            record = self.store.get(session_id)
            if record is None:
                continue
            leaver = Role.SENDER if record.sender_node == dead else Role.RECEIVER
            log.info("node gone: ending session=%s", redact(session_id))
            end_session(self, session_id, leaver=leaver, reason="peer's server node went away")
        self.store.forget_node(dead)

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.config.reaper_interval):
            try:
                self.reap()
            except StoreUnavailable as exc:
                log.warning("reaper skipped a pass: %s", exc)
            except Exception:
                log.exception("reaper pass failed")

    def report_activity(self) -> None:
        """Pings and pongs count as activity: tell the store about local peers that saw
        bytes since the last pass (messages touch the session at most once a second)."""
        seen: dict[tuple[str, str], float] = {}
        missing: set[tuple[str, str]] = set()
        local = self.router.local_sessions()
        touched = self._touched
        for start in range(0, len(local), REPORT_STEP):
            if start:
                time.sleep(0)  # let the connections run (a greenlet switch under gevent)
            self._report_step(local[start : start + REPORT_STEP], touched, seen, missing)
        self._touched = seen
        self._missing = missing

    def _report_step(
        self,
        local: list[tuple[str, Role, Any]],
        touched: dict[tuple[str, str], float],
        seen: dict[tuple[str, str], float],
        missing: set[tuple[str, str]],
    ) -> None:
        active = {sid for sid, role, peer in local if peer.last_activity > touched.get((sid, role.value), 0)}
        gone = self.store.touch_all(active)  # with Redis one round trip per thousand
        for session_id, role, peer in local:
            key = (session_id, role.value)
            seen[key] = peer.last_activity
            if session_id in gone:
                # gone from the store yet still here: a teardown in flight closes it within
                # moments, so only a connection still here one pass later was really lost
                if key in self._missing:
                    lost_session(self, session_id, role, peer)
                else:
                    missing.add(key)
                    seen[key] = 0.0  # check again next pass

    def reap(self) -> int:
        """End every expired session; returns how many."""
        self.report_activity()
        expired = self.store.expired(idle=self.config.session_idle, max_age=self.config.session_max_age)
        for session_id in expired:
            log.info("session reaped session=%s", redact(session_id))
            try:
                expire_session(self, session_id)
            except Exception:
                log.exception("reaping a session failed")
        return len(expired)

    def _leaver(self, session_id: str, role: Role) -> Role | None:
        """Who leaves when this node stops: nobody if both sides are here (both just see
        1001), else our side, so a peer held by another node hears `peer-left` (its own
        connection is fine; its partner's node went away)."""
        record = self.store.get(session_id)
        if record is None or not record.joined:
            return None
        other = Role.RECEIVER if role is Role.SENDER else Role.SENDER
        return role if record.node_of(other) != self.node else None

    def shutdown(self) -> None:
        """Close every local session (1001; a peer on another node also hears `peer-left`),
        stop the background tasks, flush stats. Idempotent; safe from any thread."""
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._stop.set()
        if self.handoff is not None:
            self.handoff.stop()
        local = {sid: role for sid, role, _peer in self.router.local_sessions()}
        for session_id, role in local.items():
            try:
                leaver = self._leaver(session_id, role)
                end_session(self, session_id, leaver=leaver, reason="server shutting down")
            except StoreUnavailable as exc:
                log.warning("shutdown: %s (local connections are closed anyway)", exc)
                break
            except Exception:
                log.exception("closing a session at shutdown failed")
        self.teardowns.drain()  # connections gone just before: their peers hear peer-left
        with self.peers_lock:
            stragglers = list(self.peers)
        for peer in stragglers:
            peer.close(1001, "server shutting down")
        self.router.stop()
        with contextlib.suppress(StoreUnavailable):
            self.store.forget_node(self.node)
        self.store.close()
        self.stats.stop()

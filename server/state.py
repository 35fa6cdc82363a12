"""Everything one server process (a node) shares between requests, plus its background
tasks (threads, or greenlets under gevent): the reaper and the stats writer."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from server.config import ConfigError, ServerConfig
from server.metrics import Metrics
from server.ratelimit import ConnectionCounter
from server.router import LocalRouter
from server.sessions import MemoryStore
from server.stats import Stats
from server.store import Router, SessionStore, StoreUnavailable

log = logging.getLogger("sp2p.server")


def _backend(config: ServerConfig, node: str) -> tuple[SessionStore, Router]:
    if config.redis_url:
        raise ConfigError("-redis: the Redis backend is not in this build yet")
    store = MemoryStore(max_sessions=config.max_sessions, max_sessions_per_ip=config.max_sessions_per_ip)
    return store, LocalRouter()


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        #: this process's name in the service (Redis channels, records, heartbeats)
        self.node = secrets.token_hex(6)
        self.store, self.router = _backend(config, self.node)
        stats_path = config.config_dir / "stats.json" if config.config_dir else None
        self.stats = Stats(stats_path, config.stats_interval)
        self.metrics = Metrics()
        self.ws_limiter = self.store.limiter("ws", config.rate_limit, 60.0)
        self.miss_limiter = self.store.limiter("miss", config.miss_limit, 60.0)
        self.turn_budget = self.store.limiter("turn", config.turn_per_ip_hour, 3600.0)
        self.connections = ConnectionCounter(config.effective_max_conns, config.max_conns_per_ip)
        #: every open WebSocket, so shutdown can close those without a session too
        self.peers: set[Any] = set()
        self.peers_lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False
        #: (session, role) -> the peer activity last reported to the store
        self._touched: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        """Start the router, the reaper and the stats writer (idempotent)."""
        if self._reaper is not None:
            return
        self.router.start()
        self.stats.start()
        self._reaper = threading.Thread(target=self._reap_loop, name="sp2p-reaper", daemon=True)
        self._reaper.start()

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
        bytes since the last pass (messages already touch the session)."""
        seen: dict[tuple[str, str], float] = {}
        for session_id, role, peer in self.router.local_sessions():
            key = (session_id, role.value)
            seen[key] = peer.last_activity
            if peer.last_activity > self._touched.get(key, 0.0):
                self.store.touch(session_id)
        self._touched = seen

    def reap(self) -> int:
        """End every expired session; returns how many."""
        from server.ws import expire_session, redact

        self.report_activity()
        expired = self.store.expired(idle=self.config.session_idle, max_age=self.config.session_max_age)
        for session_id in expired:
            log.info("session reaped session=%s", redact(session_id))
            try:
                expire_session(self, session_id)
            except Exception:
                log.exception("reaping a session failed")
        return len(expired)

    def shutdown(self) -> None:
        """Close every local session (peers see `peer-left`-free closes with 1001), stop the
        background tasks, flush stats. Idempotent; safe from any thread."""
        from server.ws import end_session

        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._stop.set()
        for session_id in {sid for sid, _role, _peer in self.router.local_sessions()}:
            try:
                end_session(self, session_id, leaver=None, reason="server shutting down")
            except Exception:
                log.exception("closing a session at shutdown failed")
        with self.peers_lock:
            stragglers = list(self.peers)
        for peer in stragglers:
            peer.close(1001, "server shutting down")
        self.router.stop()
        self.store.close()
        self.stats.stop()

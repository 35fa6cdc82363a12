"""Everything one server process shares between requests, plus its background threads."""

from __future__ import annotations

import logging
import threading
from typing import Any

from server.config import ServerConfig
from server.ratelimit import ConnectionCounter, FixedWindowLimiter
from server.sessions import SessionRegistry
from server.stats import Stats

log = logging.getLogger("sp2p.server")


class ServerState:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.registry = SessionRegistry(
            max_sessions=config.max_sessions, max_sessions_per_ip=config.max_sessions_per_ip
        )
        stats_path = config.config_dir / "stats.json" if config.config_dir else None
        self.stats = Stats(stats_path, config.stats_interval)
        self.ws_limiter = FixedWindowLimiter(config.rate_limit, 60.0)
        self.miss_limiter = FixedWindowLimiter(config.miss_limit, 60.0)
        self.turn_budget = FixedWindowLimiter(config.turn_per_ip_hour, 3600.0)
        self.connections = ConnectionCounter(config.effective_max_conns, config.max_conns_per_ip)
        #: every open WebSocket, so shutdown can close those without a session too
        self.peers: set[Any] = set()
        self.peers_lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    def start(self) -> None:
        """Start the reaper and the stats writer (idempotent)."""
        if self._reaper is not None:
            return
        self.stats.start()
        self._reaper = threading.Thread(target=self._reap_loop, name="sp2p-reaper", daemon=True)
        self._reaper.start()

    def _reap_loop(self) -> None:
        while not self._stop.wait(self.config.reaper_interval):
            self.reap()

    def reap(self) -> int:
        """End every expired session; returns how many."""
        from server.ws import expire_session, redact

        expired = self.registry.expired(idle=self.config.session_idle, max_age=self.config.session_max_age)
        for session in expired:
            log.info("session reaped session=%s", redact(session.id))
            try:
                expire_session(self, session)
            except Exception:
                log.exception("reaping a session failed")
        return len(expired)

    def shutdown(self) -> None:
        """Close every session (peers see `peer-left`-free closes with 1001), stop the
        threads, flush stats. Idempotent; safe from any thread."""
        from server.ws import end_session

        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self._stop.set()
        for session in self.registry.sessions():
            try:
                end_session(self, session, leaver=None, reason="server shutting down")
            except Exception:
                log.exception("closing a session at shutdown failed")
        with self.peers_lock:
            stragglers = list(self.peers)
        for peer in stragglers:
            peer.close(1001, "server shutting down")
        self.stats.stop()

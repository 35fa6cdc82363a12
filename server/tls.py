"""TLS contexts that pick up a changed certificate without a restart.

gunicorn's gevent worker asks its `ssl_context` hook once and wraps every accepted socket
with that context, so `CertReloader` keeps ONE context and, every `check_interval`
seconds, loads changed certificate and key files into it (a renewed ACME certificate, or
an operator replacing files, upstream §4.3). A failed reload keeps the old certificate.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from pathlib import Path

log = logging.getLogger("sp2p.server")


def make_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Server context: TLS 1.2+, HTTP/1.1 only (WebSockets need it). Raises OSError or
    ssl.SSLError when the files are missing or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    context.set_alpn_protocols(["http/1.1"])
    return context


class CertReloader:
    """One live context; `refresh()` (run every `check_interval` by `start()`) loads
    changed files into it in place, so connections accepted afterwards get them."""

    def __init__(self, cert: Path, key: Path, check_interval: float = 30.0) -> None:
        self._cert = cert
        self._key = key
        self._interval = check_interval
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._context = make_context(cert, key)
        self._thread: threading.Thread | None = None

    def _mtimes(self) -> tuple[int, int]:
        try:
            return self._cert.stat().st_mtime_ns, self._key.stat().st_mtime_ns
        except OSError:
            return (-1, -1)

    def context(self) -> ssl.SSLContext:
        return self._context

    def refresh(self) -> bool:
        """Reload when the files changed; True if the served certificate changed."""
        with self._lock:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                make_context(self._cert, self._key)  # a mismatched pair must not half-load
                self._context.load_cert_chain(certfile=str(self._cert), keyfile=str(self._key))
            except (OSError, ssl.SSLError) as exc:
                log.warning("keeping the previous TLS certificate: %s", exc)
                return False
            log.info("reloaded TLS certificate %s", self._cert)
            return True

    def start(self) -> None:
        """Check the files every `check_interval` in a daemon thread (idempotent)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while True:
                time.sleep(self._interval)
                self.refresh()

        self._thread = threading.Thread(target=loop, name="sp2p-cert-reload", daemon=True)
        self._thread.start()

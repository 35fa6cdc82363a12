"""TLS contexts that pick up a changed certificate without a restart.

Gunicorn asks its `ssl_context` hook for a context on every new connection;
`CertReloader.context()` returns a cached one and, at most every `check_interval`
seconds, rebuilds it when the certificate or key file changed (a renewed ACME certificate,
or an operator replacing files, upstream §4.3). A failed reload keeps the old context.
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
    def __init__(self, cert: Path, key: Path, check_interval: float = 30.0) -> None:
        self._cert = cert
        self._key = key
        self._interval = check_interval
        self._lock = threading.Lock()
        self._stamp = self._mtimes()
        self._context = make_context(cert, key)
        self._next_check = time.monotonic() + check_interval

    def _mtimes(self) -> tuple[int, int]:
        try:
            return self._cert.stat().st_mtime_ns, self._key.stat().st_mtime_ns
        except OSError:
            return (-1, -1)

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + self._interval
                stamp = self._mtimes()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._context = make_context(self._cert, self._key)
                        log.info("reloaded TLS certificate %s", self._cert)
                    except (OSError, ssl.SSLError) as exc:
                        log.warning("keeping the previous TLS certificate: %s", exc)
            return self._context

"""Run the app under gunicorn, programmatically.

gunicorn's `gevent` worker: every connection is a greenlet (a few KB), not an OS thread, so
one worker holds tens of thousands of idle WebSockets and a mass disconnect is a burst of
cheap greenlet exits rather than thousands of runnable threads. The worker monkey-patches
the standard library before it loads the app, so the blocking-style handler code (locks,
`threading.Timer`, socket timeouts, waiting for a socket to become readable) runs
cooperatively as is.
With the in-memory store there is exactly ONE worker process: sessions live in its memory.
With -redis there are `-workers` processes (default: one per core), each a node of the
service with its own channel, sharing sessions through Redis; /metrics then sums the
workers through prometheus_client's multiprocess directory, created here before the fork.

The address is bound by us before gunicorn starts (server.listen; `fd://N`), so a busy or
privileged port is a one-line startup error instead of gunicorn's retry loop; gunicorn
still logs `Listening at: http://HOST:PORT` with the real (possibly ephemeral) port. With
several workers each also listens on a socket of its own there (server.listen says why).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from server import create_app
from server.config import ServerConfig
from server.gevent_worker import StopFastWorker
from server.tls import CertReloader

log = logging.getLogger("sp2p.server")

_reloader: CertReloader | None = None
#: (certificate, key, check interval), set in the arbiter before the worker forks
_cert_settings: tuple[Path, Path, float] | None = None


def _ssl_context(conf: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    global _reloader
    if _reloader is None:
        assert _cert_settings is not None
        _reloader = CertReloader(*_cert_settings)
        _reloader.start()  # called in the worker, after gevent patched threading
    return _reloader.context()


def _post_worker_init(worker: Any) -> None:
    """On the way out (TERM, INT or QUIT) the worker closes every session first."""
    app: Flask = worker.wsgi
    worker.on_stop = app.extensions["sp2p"].shutdown
    # imported here, in the worker: importing the app's modules in the arbiter would load
    # prometheus_client before _metrics_dir() chose its multiprocess mode
    from server.endpoint import WebSocketEndpoint

    endpoint = app.wsgi_app
    if isinstance(endpoint, WebSocketEndpoint) and not worker.cfg.is_ssl:
        worker.ws_direct = endpoint.serve_raw  # /ws before gunicorn's HTTP parser
        handoff = endpoint.state.handoff
        if handoff is not None:  # receivers move to their sender's worker (server.handoff)
            worker.on_pool = partial(handoff.listen, adopt=endpoint.adopt)


def _on_exit(server: Any) -> None:
    """The arbiter is done: skip the exit's collections over the heap (~0.3 s loaded)."""
    gc.freeze()


def _child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must leave the multiprocess sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _metrics_dir(workers: int) -> None:
    """Several workers: a fresh directory for prometheus_client's per-process files (set
    before any worker imports it). An operator's PROMETHEUS_MULTIPROC_DIR is kept."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="sp2p-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        atexit.register(_remove_in, os.getpid(), path)


def _remove_in(owner: int, path: str) -> None:
    """A forked worker inherits the atexit list: only the arbiter may remove the directory
    (a worker leaving early took every other worker's files with it)."""
    if os.getpid() == owner:
        shutil.rmtree(path, True)


class Sp2pApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: ServerConfig, listener: socket.socket) -> None:
        self.config = config
        self.listener = listener
        super().__init__(prog="sp2p-server")

    def load_config(self) -> None:
        workers = self.config.effective_workers
        options: dict[str, Any] = {
            "bind": [f"fd://{self.listener.fileno()}"],
            "workers": workers,
            "worker_class": StopFastWorker,  # gevent, stopping within ~1 s of SIGTERM
            # gevent's pool size: the WebSocket cap plus room for plain HTTP requests
            "worker_connections": self.config.effective_max_conns + 256,
            "timeout": 30,
            "graceful_timeout": 5,
            "keepalive": 5,
            "accesslog": None,  # access logs would record session ids in file-info URLs
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "sp2p-server",
            "forwarded_allow_ips": "",  # X-Forwarded-* is ours to judge (-trust-proxy)
            "secure_scheme_headers": {},
            "control_socket_disable": True,
            "preload_app": False,
            "post_worker_init": _post_worker_init,
            "child_exit": _child_exit,
            "on_exit": _on_exit,
        }
        if self.config.tls:
            global _cert_settings
            cert, key = tls_files(self.config)
            _cert_settings = (cert, key, self.config.cert_check_interval)
            options.update(certfile=str(cert), keyfile=str(key), ssl_context=_ssl_context)
        for key_name, value in options.items():
            self.cfg.set(key_name, value)

    def load(self) -> Flask:
        return create_app(self.config)


def tls_files(config: ServerConfig) -> tuple[Path, Path]:
    if config.acme:
        from server.acme_client import cert_paths

        return cert_paths(config)
    assert config.tls_cert is not None
    assert config.tls_key is not None
    return config.tls_cert, config.tls_key


def run(config: ServerConfig, listener: socket.socket) -> None:
    """Serve until a signal stops gunicorn (which also closes `listener`)."""
    _metrics_dir(config.effective_workers)
    Sp2pApplication(config, listener).run()

"""`sp2p-server`: parse flags and environment, validate, then run gunicorn.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 for invalid or contradictory
configuration or a startup failure (one line on stderr, no traceback), 2 for a bad
command line.
"""

from __future__ import annotations

import logging
import os
import resource
import ssl
import sys
from collections.abc import Mapping, Sequence

from server.config import ConfigError, ServerConfig
from server.flags import HelpRequested, UsageError, VersionRequested, parse_args, usage

log = logging.getLogger("sp2p.server")


def build_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    values, explicit = parse_args(argv, environ)
    # upstream: a session cap <= 0 means the default
    for name, default in (("max_sessions", 1000), ("max_sessions_per_ip", 10)):
        if values.get(name, 1) <= 0:
            values[name] = default
    tls = values.get("acme") or values.get("tls_cert")
    if tls and "addr" not in explicit and not environ.get("SP2P_ADDR"):
        values["addr"] = ":443"
    return ServerConfig.from_mapping(values)


def raise_fd_limit() -> int:
    """Every WebSocket is a file descriptor: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def _configure_logging() -> None:
    from server.logsink import BatchingHandler, LineFormatter

    # no format here or in gunicorn's uses them; the thread name made a dummy Thread (locks
    # and all) for every connection's greenlet that logged (gunicorn's lines show the pid)
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup (a stack walk per line) for fields no format uses
    handler = BatchingHandler(sys.stderr)
    handler.setFormatter(LineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("sp2p")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _check_tls(config: ServerConfig) -> None:
    if config.tls_cert is not None and config.tls_key is not None:
        from server.tls import make_context

        for flag, path in (("-tls-cert", config.tls_cert), ("-tls-key", config.tls_key)):
            try:  # ssl's own error does not say which file
                path.open("rb").close()
            except OSError as exc:
                raise ConfigError(f"cannot load the TLS certificate: {flag} {path}: {exc.strerror}") from None
        try:
            make_context(config.tls_cert, config.tls_key)
        except (OSError, ssl.SSLError) as exc:
            # ssl says KEY_VALUES_MISMATCH, or just "PEM lib (_ssl.c:3905)": no reason then
            why = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
            raise ConfigError(
                f"cannot load the TLS certificate: {config.tls_cert} and {config.tls_key} are not "
                "a PEM certificate chain and its private key" + (f" ({why})" if why else "")
            ) from None


def _check_redis(config: ServerConfig) -> None:
    """Unreachable Redis is a one-line startup error, not a worker that fails to boot."""
    if not config.redis_url:
        return
    from server.redis_router import connect
    from server.redis_store import redact_url

    try:
        store, _router = connect(config, "startup-check")
    except TypeError as exc:  # redis-py passes ?name=value on as a keyword: an unknown one fails so
        raise ConfigError(f"-redis {redact_url(config.redis_url)}: unsupported URL option ({exc})") from None
    store.close()


def _quiet_unused_ssl_warning() -> None:
    """`import redis` (the check above) loads redis.asyncio, which keeps its own reference to
    the ssl module; gevent's patching in every worker then warns that it stays unpatched. We
    never use redis.asyncio: the warning (two lines per worker at start) only alarms. The
    filter is inherited by the forked workers; any other module named still warns."""
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"Monkey-patching ssl after ssl has already been imported.*"
        r"\(NOT patched\): \['redis\.asyncio\.connection \([^)]*\)'\]\. ?$")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        config = build_config(args, os.environ)
    except HelpRequested:
        sys.stdout.write(usage())
        return 0
    except VersionRequested:
        from sp2p import __version__

        print(f"sp2p-server {__version__}")
        return 0
    except UsageError as exc:
        print(f"sp2p-server: {exc} (see -help)", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"sp2p-server: {exc}", file=sys.stderr)
        return 1
    _configure_logging()
    try:
        _check_tls(config)
        _check_redis(config)
        _quiet_unused_ssl_warning()
        from server.gunicorn_app import run
        from server.listen import bind_listener

        listener = bind_listener(config.addr, config.effective_workers)
        if config.acme:
            from server import acme_client

            acme_client.start(config)  # first certificate before we serve; then renewals
    except ConfigError as exc:
        print(f"sp2p-server: {exc}", file=sys.stderr)
        return 1
    limit = raise_fd_limit()
    if config.base_url is None:
        log.warning("no -base-url set: links and scripts use each request's Host header")
    log.info(
        "starting sp2p-server (tls=%s, turn=%s, store=%s, workers %d, max sessions %d, fd limit %d)",
        "acme" if config.acme else ("file" if config.tls else "off"),
        "yes" if config.turn_available else "no",
        "redis" if config.redis_url else "memory",
        config.effective_workers,
        config.max_sessions,
        limit,
    )
    run(config, listener)
    return 0

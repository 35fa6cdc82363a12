"""The listening address: bound by the arbiter, and with several workers one socket each.

With one socket shared by several workers, every new connection woke all of their event
loops and all but one found nothing to accept (~10 context switches per exchange instead of
2 with four workers). So with several workers each also listens on a socket of its own on
the same address (SO_REUSEPORT) and the kernel hands each connection to exactly one of
them (server/steering.py keeps connections off the shared socket while every worker is
up).

The arbiter's socket still listens, for the life of the server: connections that arrive
before a worker booted, or while one is being replaced, queue there and every worker
serves it, so nothing is refused between `Listening at:` and the first worker, and port 0
resolves once for all workers, restarted ones too. What the kernel's choice costs:
connections already queued on a worker's own socket when that worker dies are reset (Linux
>= 5.14 moves them to a sibling with the sysctl net.ipv4.tcp_migrate_req=1), and a busy
worker still gets its share of new connections (balanced over many, not per connection).

Every listening socket defers the accept until the client's first bytes arrive
(TCP_DEFER_ACCEPT): a worker woken for a new connection finds its request head there and
reads it at once. Without it the handshake's last ACK woke the worker, whose peek at the
head found nothing, parked the connection and was woken again by the head (one more
wake-up and ~3 syscalls per connection; on a loopback benchmark most connections). A client
that connects and stays silent costs only the kernel's half-open entry until DEFER_ACCEPT,
then is accepted and meets the head timeout as before.
"""

from __future__ import annotations

import logging
import socket

from server import steering
from server.config import ConfigError, parse_addr

log = logging.getLogger("sp2p.server")

#: pending connections per listening socket (gunicorn's default backlog)
BACKLOG = 2048
#: seconds a connection may stay silent before it is accepted anyway (server.endpoint's
#: HEAD_TIMEOUT then applies); the kernel rounds it up to its SYN-ACK retransmits
DEFER_ACCEPT = 5


def bind_listener(addr: str, workers: int = 1) -> socket.socket:
    """Listen on a Go-style address (":8080" = all interfaces, IPv6 if possible), in a
    SO_REUSEPORT group steered to the workers' own sockets if `workers` > 1."""
    host, port = parse_addr(addr)
    candidates: list[tuple[socket.AddressFamily, str]]
    if host == "":
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]  # noqa: S104
    elif ":" in host:
        candidates = [(socket.AF_INET6, host)]
    else:
        candidates = [(socket.AF_INET, host)]
    error: OSError | None = None
    for family, bind_host in candidates:
        dual_stack = family == socket.AF_INET6 and host == ""
        sock = _socket(family, dual_stack=dual_stack)
        try:
            # Without SO_REUSEPORT this bind fails while anything listens on the address
            # (another sp2p-server's workers too: their group would take ours in)
            sock.bind((bind_host, port))
            if workers > 1:
                shared = _socket(family, dual_stack=dual_stack, reuse_port=True)
                try:  # beside the probe (unlistened, SO_REUSEADDR both), which then goes
                    shared.bind(sock.getsockname())
                except OSError:
                    shared.close()
                    raise
                sock.close()
                sock = shared
            sock.listen(BACKLOG)
            _defer_accept(sock)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        if workers > 1:
            _steer(sock, workers)
        sock.set_inheritable(True)
        return sock
    raise ConfigError(f"cannot listen on {addr}: {error.strerror if error else 'unknown error'}")


def _steer(sock: socket.socket, workers: int) -> None:
    try:
        steering.attach(sock, workers)
    except OSError as exc:  # the shared socket then takes its hashed share, served as before
        log.warning("cannot steer connections to the workers' own sockets: %s", exc.strerror)


def per_worker(shared: socket.socket) -> bool:
    """Whether workers should open their own socket beside this shared listening one."""
    return bool(shared.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


def worker_listener(shared: socket.socket) -> socket.socket:
    """A worker's own listening socket in `shared`'s group (see `per_worker`). Opened in the
    worker after gevent patched `socket`, so it is a cooperative socket."""
    family = socket.AddressFamily(shared.family)
    dual_stack = family == socket.AF_INET6 and not shared.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    sock = _socket(family, dual_stack=dual_stack, reuse_port=True)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as gunicorn's own
        sock.bind(shared.getsockname())
        sock.listen(BACKLOG)
        _defer_accept(sock)
    except OSError:
        sock.close()
        raise
    return sock


def _defer_accept(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT)


def _socket(family: socket.AddressFamily, *, dual_stack: bool, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    except OSError:
        sock.close()
        raise
    return sock

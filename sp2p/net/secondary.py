"""Secondary TCP connections of parallel TCP (client.md §3.11).

Roles copy the primary connection: whoever dialed the primary dials the secondaries
to the same remote address; the other side accepts them on its still-open listener.
Each secondary proves itself with the session's parallel token; anything else that
connects is closed and the acceptor keeps waiting until the deadline.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from sp2p.log import get_logger
from sp2p.net.tcp import TcpChannel, recv_exact
from sp2p.proto.parallel import (
    SECONDARY_ACK,
    SECONDARY_HELLO_BYTES,
    parse_secondary_hello,
    secondary_hello,
)

log = get_logger(__name__)


def dial_secondaries(
    address: tuple[str, int], token: bytes, count: int, deadline: float
) -> dict[int, TcpChannel]:
    """Dial streams 1..count at once; the ones acknowledged before the deadline, by index."""
    found: dict[int, TcpChannel] = {}
    lock = threading.Lock()

    def dial(index: int) -> None:
        channel = _dial_one(address, token, index, deadline)
        if channel is not None:
            with lock:
                found[index] = channel

    threads = [
        threading.Thread(target=dial, args=(i,), name="sp2p-secondary-dial", daemon=True)
        for i in range(1, count + 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
    with lock:
        return dict(found)


def _dial_one(address: tuple[str, int], token: bytes, index: int, deadline: float) -> TcpChannel | None:
    host, port = address[0], address[1]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.connect((host, port))
        sock.sendall(secondary_hello(token, index))
        if recv_exact(sock, 1, max(0.1, deadline - time.monotonic())) != SECONDARY_ACK:
            raise ConnectionError("wrong acknowledgement")
    except (OSError, ConnectionError) as exc:
        log.debug("parallel: secondary %d to %s:%d failed: %s", index, host, port, exc)
        sock.close()
        return None
    return TcpChannel(sock, dialed=True)


def accept_secondaries(
    listener: socket.socket, token: bytes, count: int, deadline: float
) -> dict[int, TcpChannel]:
    """Accept until streams 1..count all arrived or the deadline passed.

    Each hello is read on its own thread, so a stranger who connects and stays silent
    cannot hold up the real secondaries.
    """
    found: dict[int, TcpChannel] = {}
    lock = threading.Lock()
    complete = threading.Event()

    def check(sock: socket.socket) -> None:
        index = _read_hello(sock, token, count, deadline)
        with lock:  # claim the index before acknowledging: a duplicate gets no 'T'
            if index is None or index in found or complete.is_set():
                sock.close()
                return
            found[index] = TcpChannel(sock, dialed=False)
            try:
                sock.sendall(SECONDARY_ACK)
            except OSError:
                del found[index]
                sock.close()
                return
            if len(found) == count:
                complete.set()

    while not complete.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([listener], [], [], min(left, 0.1))
        if not ready:
            continue
        try:
            sock, addr = listener.accept()
        except OSError:
            break
        log.debug("parallel: secondary connection from %s", addr)
        threading.Thread(target=check, args=(sock,), name="sp2p-secondary-hello", daemon=True).start()
    with lock:
        complete.set()  # late hellos are closed from now on
        return dict(found)


def _read_hello(sock: socket.socket, token: bytes, count: int, deadline: float) -> int | None:
    try:
        hello = recv_exact(sock, SECONDARY_HELLO_BYTES, max(0.1, deadline - time.monotonic()))
    except (OSError, ConnectionError):
        return None
    return parse_secondary_hello(hello, token, count)


def close_all(channels: dict[int, TcpChannel]) -> None:
    for channel in channels.values():
        with contextlib.suppress(Exception):
            channel.close()

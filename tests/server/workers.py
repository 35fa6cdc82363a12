"""Several gevent workers through REAL gunicorn, and what the kernel says about them (`ss`,
`pgrep`): who listens, what is queued where, which process holds a connection. Shared by
test_gunicorn_workers and test_handoff (their fixtures `redis_url` and `four` live in
conftest.py)."""

from __future__ import annotations

import itertools
import os
import re
import ssl
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import websocket

from tests.server.helpers import wait_until
from tests.server.tlsutil import write_self_signed
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

PID = re.compile(r"pid=(\d+),")
_prefixes = itertools.count()


def children(server: ServerProc) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _ss(*args: str) -> list[str]:
    out = subprocess.run(["ss", "-Htnp", *args], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


@dataclass(frozen=True)
class Listener:
    pids: frozenset[int]
    queued: int  #: connections waiting to be accepted


def listeners(server: ServerProc) -> list[Listener]:
    """The server's listening sockets (ss matches the port on every local address: another
    process may use the same port number from another loopback address)."""
    ours = {server.proc.pid, *children(server)}
    found = [
        Listener(frozenset(int(pid) for pid in PID.findall(line)), int(line.split()[1]))
        for line in _ss("-l", f"( sport = :{server.port} )")
    ]
    return [entry for entry in found if entry.pids & ours]


def own_listeners(server: ServerProc) -> Counter[int]:
    """Each worker's own listening sockets, by worker: those no other process holds."""
    return Counter(pid for found in listeners(server) if len(found.pids) == 1 for pid in found.pids)


def shared_listener(server: ServerProc) -> Listener:
    (found,) = (found for found in listeners(server) if server.proc.pid in found.pids)
    return found


def holders(server: ServerProc) -> set[int]:
    """The server's processes holding the server side of established connections."""
    lines = _ss("state", "established", f"( sport = :{server.port} )")
    return {int(pid) for line in lines for pid in PID.findall(line)} & {server.proc.pid, *children(server)}


def start_workers(redis_url: str, workers: int, *flags: str) -> ServerProc:
    server = start_server(
        "-redis", redis_url, "-redis-prefix", f"w{next(_prefixes)}{os.getpid()}",
        "-workers", str(workers), *NO_LIMIT_FLAGS, *flags, timeout=60,
    )  # fmt: skip
    try:
        assert wait_until(lambda: len(children(server)) == workers, timeout=30), children(server)
        # every worker booted its own listener
        booted = wait_until(lambda: own_listeners(server) == Counter(children(server)), timeout=30)
        assert booted, (listeners(server), children(server), server.stderr_text()[-2000:])
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def tls_workers(redis_url: str, workers: int, tmp_path: Path) -> Iterator[tuple[ServerProc, Callable[[], websocket.WebSocket]]]:
    """A server of `workers` workers terminating TLS itself (a self-signed certificate in
    `tmp_path`), and a function opening a `wss://` WebSocket to it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    flags = ("-tls-cert", str(cert), "-tls-key", str(key), "-base-url", "https://localhost")
    context = ssl.create_default_context(cafile=str(cert))
    with start_workers(redis_url, workers, *flags) as server:

        def connect() -> websocket.WebSocket:
            return websocket.create_connection(
                f"wss://localhost:{server.port}/ws", sslopt={"context": context}, suppress_origin=True, timeout=5
            )

        yield server, connect

"""Loopback ports and URLs for the servers tests start."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from pathlib import Path

#: the lowest port free_port draws (below it: well-known and registered services)
_FLOOR = 10_000
_DRAWS = 100


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections and bind(0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free right now (bound, read, released: the caller takes it).

    Drawn below the kernel's ephemeral range: a port from bind(0) could be taken by any
    outgoing connection (a server bench's thousands, another test's clients) before the
    caller binds it, and redis-server or turnserver would then fail to start; here only
    another explicit bind can race it."""
    with socket.socket(socket.AF_INET, kind) as s:
        for _ in range(_DRAWS):
            port = random.randrange(_FLOOR, max(_ephemeral_low(), _FLOOR + _DRAWS))
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        s.bind(("127.0.0.1", 0))  # everything drawn was taken: the kernel's choice
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port where a TCP connect is refused at once, while the block runs. It is held
    bound, not listening: a port bound and released again may meanwhile go to a server that
    some other test (or helper) starts on port 0, and a client meant to be refused would then
    reach it, or wait on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class LoopbackUrls:
    """`http_url` and `ws_url` of a plain-HTTP server on 127.0.0.1:`port` (a mixin)."""

    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

"""One dedicated Redis connection for a caller that is alone on it: commands packed and sent
in one write, answers read in order.

redis-py's client layer (pool checkout, retry wrapper, pipeline object, response
callbacks) cost 75-106 us of CPU per command under gevent, against ~35 us for the same
command written and read on one of its connections (a micro-benchmark on this machine).
The script runner (server.redis_batch lets one caller at a time in) and the router's
publisher (one greenlet) are each alone on their connection, so they go straight to it.
The connection is redis-py's own, built from the client's URL settings (TLS, password,
Unix socket, database, timeouts); only the layer above it is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import redis
from redis.typing import EncodableT

#: one command: its name and arguments
Command = Sequence[EncodableT]


class _Connection(Protocol):
    """What we use of a redis-py connection (its methods are untyped)."""

    def pack_commands(self, commands: Sequence[Command]) -> list[bytes]: ...

    def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


class Wire:
    """`run(commands)` answers each command in order: its reply, or the ResponseError
    Redis gave for it. Connection failures raise (a RedisError) for the whole call."""

    def __init__(self, client: redis.Redis) -> None:
        self._conn = cast(_Connection, client.connection_pool.make_connection())

    def run(self, commands: Sequence[Command]) -> list[Any]:
        try:
            return self._exchange(commands)
        except redis.ConnectionError as exc:
            # a connection Redis closed (a restart) fails on the first use after it; retry
            # once on a fresh one, as redis-py's client does, unless an answer was read
            if getattr(exc, "answered", False):
                raise
            return self._exchange(commands)

    def _exchange(self, commands: Sequence[Command]) -> list[Any]:
        conn = self._conn
        replies: list[Any] = []
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:  # this command's error; the rest still come
                    replies.append(exc)
        except BaseException as exc:
            # a failure (or a greenlet killed mid-read) leaves unread answers on the wire
            conn.disconnect()
            if replies and isinstance(exc, redis.ConnectionError):
                exc.answered = True  # type: ignore[attr-defined]
            raise
        return replies

    def close(self) -> None:
        self._conn.disconnect()

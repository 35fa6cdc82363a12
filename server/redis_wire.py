"""One dedicated Redis connection for a caller that is alone on it: commands packed and sent
in one write, answers read in order.

redis-py's client layer (pool checkout, retry wrapper, pipeline object, response
callbacks) cost 75-106 us of CPU per command under gevent, against ~35 us for the same
command written and read on one of its connections (a micro-benchmark on this machine).
The script runner (server.redis_batch lets one caller at a time in) and the router's
publisher (one greenlet) are each alone on their connection, so they go straight to it.
The connection is redis-py's own, built from the client's URL settings (TLS, password,
Unix socket, database, timeouts); only the layer above it is skipped. `Subscriber` does the
same for a node's channel: redis-py's PubSub.get_message(timeout=...) went through its
retry and lock layers and started a gevent Timeout per call (~2.7 % of a worker).
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

    def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None: ...

    def read_response(self, *, push_request: bool = False) -> Any: ...

    def disconnect(self) -> None: ...


def pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings, encoded as redis-py's Encoder does (str as UTF-8, int
    and float by repr; bool refused). Its pack_commands cost 24 us for one 11-argument
    EVALSHA on this machine, half of that call's CPU; this costs a fraction. ASCII text and
    ints (nearly every argument we send) are framed as text and encoded once per run of
    them (a 19-argument EVALSHA: 11.1 -> 8.6 us, the best of 40 interleaved runs)."""
    out: list[bytes] = []
    for command in commands:
        text = [f"*{len(command)}\r\n"]
        for arg in command:
            if isinstance(arg, str) and arg.isascii():
                text.append(f"${len(arg)}\r\n{arg}\r\n")
                continue
            if type(arg) is int:  # not a bool: type() is exact
                digits = repr(arg)
                text.append(f"${len(digits)}\r\n{digits}\r\n")
                continue
            out.append("".join(text).encode())
            text = []
            out.append(_bulk(arg))
        out.append("".join(text).encode())
    return b"".join(out)


def _bulk(arg: EncodableT) -> bytes:
    if isinstance(arg, str):
        data = arg.encode()
    elif isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, bool):
        raise redis.DataError("a bool is not a Redis argument")
    elif isinstance(arg, (int, float)):
        data = repr(arg).encode()
    else:
        data = bytes(arg)  # memoryview
    return b"$%d\r\n%s\r\n" % (len(data), data)


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
            conn.send_packed_command([pack(commands)], check_health=False)
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


class Subscriber:
    """One channel read on its own connection: `next()` blocks until a message arrives (no
    read timeout: a quiet channel is normal) and returns its text; a broken connection
    raises a RedisError. `close()` from another thread or greenlet ends a waiting `next()`."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        pool = client.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._conn = cast(_Connection, pool.connection_class(**kwargs))
        self._channel = channel
        #: set by close(): a reader woken by it stops instead of reporting a failure
        self.closed = False

    def subscribe(self) -> None:
        """Subscribe (connecting first); returns once Redis confirmed it."""
        conn = self._conn
        conn.send_packed_command([pack([("SUBSCRIBE", self._channel)])])
        while True:
            reply = conn.read_response(push_request=True)
            if isinstance(reply, list) and reply and reply[0] == "subscribe":
                return

    def next(self) -> str:
        while True:
            reply = self._conn.read_response(push_request=True)
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                return str(reply[2])

    def close(self) -> None:
        self.closed = True
        self._conn.disconnect()  # shutdown() first: a blocked read wakes with EOF

"""Dedicated Redis connections: commands packed and sent in one write, answers read in
order (`Wire`), and a node's channel read (`Subscriber`).

redis-py's client layer (pool checkout, retry wrapper, pipeline object, response
callbacks) cost 75-106 us of CPU per command under gevent, against ~35 us for the same
command written and read on one of its connections (a micro-benchmark on this machine).
The script runners (server.redis_store) and the router's publisher go straight to one.
The connection is redis-py's own, built from the client's URL settings (TLS, password,
Unix socket, database, timeouts); only the layer above it is skipped. `Subscriber` does the
same for a node's channel: redis-py's PubSub.get_message(timeout=...) went through its
retry and lock layers and started a gevent Timeout per call (~2.7 % of a worker).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol, cast

import redis
from redis.typing import EncodableT

#: one command: its name and arguments
Command = Sequence[EncodableT]


class _Connection(Protocol):
    """What we use of a redis-py connection (its methods are untyped)."""

    def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None: ...

    def read_response(self, *, push_request: bool = False, disconnect_on_error: bool = True) -> Any: ...

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


class _Call:
    """One `run`: its commands are written together; its replies come next on the wire."""

    __slots__ = ("done", "error", "expected", "replies", "retry", "sent_at")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.replies: list[Any] = []
        #: set once every reply is in, or the call failed
        self.done = threading.Event()
        self.error: redis.RedisError | None = None
        #: the failure was Redis closing the connection before any reply: worth one retry
        self.retry = False
        self.sent_at = 0.0


class Wire:
    """`run(commands)` answers each command in order: its reply, or the ResponseError
    Redis gave for it. Connection failures raise (a RedisError) for the whole call.

    Any number of callers may run at once: each call's commands are written as soon as it
    comes (one write), and its replies are matched first in, first out, since Redis answers
    a connection in order. A caller that arrived while another's commands were out had
    waited for their answer before sending its own (the leader of server.redis_batch sent
    one batch at a time): 12 ms p50 against 0.5 ms alone, 4 workers under load. One reader
    (a thread; a greenlet under gevent) reads every reply, so a caller killed while it
    waits (a greenlet's timeout) leaves nothing unread: its replies are read and dropped.
    What ends a connection (Redis closing it, no answer within the socket timeout, a write
    cut short) fails every call out on it, and the next call opens a fresh one.
    """

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        #: a fresh connection each time one is dropped (not the pool's make_connection: it
        #: counts every one it made against the client's max_connections, for good)
        self._make = partial(pool.connection_class, **pool.connection_kwargs)
        timeout = pool.connection_kwargs.get("socket_timeout")
        #: seconds the oldest call may wait for its first reply before the connection is
        #: given up (None: forever)
        self._timeout: float | None = float(timeout) if timeout else None
        self._lock = threading.Lock()
        self._live = threading.Condition(self._lock)
        #: the current connection (None: the next call opens one); each is used once: a
        #: dropped one is never opened again, so nothing read from it is taken for another's
        self._conn: _Connection | None = None
        #: the connection is open and its handshake done: the reader may read it
        self._open = False
        #: calls written on the current connection and not yet answered, in order
        self._out: deque[_Call] = deque()
        self._reader: threading.Thread | None = None
        self._closed = False

    def run(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        data = pack(commands)
        call = self._send(data, len(commands))
        call.done.wait()  # killed here: the reader reads our replies and drops them
        if call.error is not None and call.retry:
            # a connection Redis closed (a restart) fails on the first use after it; retry
            # once on a fresh one, as redis-py's client does
            call = self._send(data, len(commands))
            call.done.wait()
        if call.error is not None:
            raise call.error
        return call.replies

    def _send(self, data: bytes, expected: int) -> _Call:
        call = _Call(expected)
        with self._lock:
            if self._closed:
                raise redis.ConnectionError("the connection to Redis was closed")
            if self._conn is None:
                self._conn, self._open = self._make(), False
            conn = self._conn
            call.sent_at = time.monotonic()
            self._out.append(call)  # before the write: the reader may see its reply first
            try:
                conn.send_packed_command([data], check_health=False)  # connects first if new
            except redis.ConnectionError as exc:  # Redis closed it, or a connect failed
                self._drop(conn, exc, retry=True)
                return call
            except BaseException as exc:  # a write cut short: the stream is broken
                self._drop(conn, _as_redis_error(exc), retry=False)
                raise
            if not self._open:
                self._open = True
                self._live.notify()
            if self._reader is None:
                self._reader = threading.Thread(target=self._read_loop, name="sp2p-redis-reader", daemon=True)
                self._reader.start()
        return call

    def _drop(self, conn: _Connection, error: redis.RedisError, *, retry: bool) -> None:
        """With the lock held: end `conn` (if still current) and fail every call out on it
        with `error` (`retry`: those that had no reply may be sent again)."""
        if self._conn is not conn:
            return
        self._conn, self._open = None, False
        failed, self._out = self._out, deque()
        for call in failed:
            call.error = error
            call.retry = retry and not call.replies
            call.done.set()
        conn.disconnect()  # shutdown() first: a reader blocked on it wakes

    def _read_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._open and not self._closed:
                        self._live.wait()
                    if self._closed or self._conn is None:
                        return
                    conn = self._conn
                self._read_connection(conn)
        finally:
            with self._lock:
                self._reader = None  # (killed: the next call starts another)

    def _read_connection(self, conn: _Connection) -> None:
        """Read replies from `conn` and hand them out, until it is dropped."""
        while True:
            try:
                reply = conn.read_response(disconnect_on_error=False)
            except redis.ResponseError as exc:  # that command's error; the rest still come
                reply = exc
            except redis.TimeoutError as exc:
                with self._lock:
                    if self._conn is not conn:
                        return
                    late = self._out and time.monotonic() - self._out[0].sent_at >= (self._timeout or 0)
                    if not late:
                        continue  # a quiet connection, or an answer not yet due
                    self._drop(conn, exc, retry=False)
                return
            except BaseException as exc:
                with self._lock:
                    # Redis closed it: a call with no reply yet was maybe never run
                    self._drop(conn, _as_redis_error(exc), retry=isinstance(exc, redis.ConnectionError))
                if not isinstance(exc, Exception):
                    raise  # this reader was killed (the process is ending)
                return
            with self._lock:
                if self._conn is not conn:
                    return  # dropped meanwhile: its calls were failed already
                if not self._out:
                    self._drop(conn, redis.ConnectionError("a reply nobody asked for"), retry=False)
                    return
                call = self._out[0]
                call.replies.append(reply)
                if len(call.replies) == call.expected:
                    self._out.popleft()
                    call.done.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                closed = redis.ConnectionError("the connection to Redis was closed")
                self._drop(self._conn, closed, retry=False)
            self._live.notify_all()


def _as_redis_error(exc: BaseException) -> redis.RedisError:
    if isinstance(exc, redis.RedisError):
        return exc
    return redis.ConnectionError(f"the connection to Redis was cut: {exc!r}")


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

"""One dedicated connection per lone caller (server.redis_wire), against a REAL redis-server."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from server.redis_wire import Subscriber, Wire, pack
from tests.support.redis_proc import RedisProc


def test_commands_are_answered_in_order_with_each_error_in_its_place(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    wire = Wire(client)
    try:
        answers = wire.run([("SET", "wire:a", "1"), ("INCR", "wire:nope:not-a-number-key"),
                            ("LPUSH", "wire:a", "x"), ("GET", "wire:a")])  # fmt: skip
        assert answers[:2] == ["OK", 1]
        assert isinstance(answers[2], redis.ResponseError) and "WRONGTYPE" in str(answers[2])
        assert answers[3] == "1"
    finally:
        wire.close()
        client.delete("wire:a", "wire:nope:not-a-number-key")
        client.close()


def test_replies_are_read_by_hiredis(redis_server: RedisProc) -> None:
    """The C parser pyproject asks for (redis[hiredis]): redis-py falls back to its Python
    one without a word, and that one cost ~7 % of a Redis worker's CPU."""
    from redis._parsers import _HiredisParser

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    wire = Wire(client)
    try:
        assert wire.run([("PING",)]) == ["PONG"]
        assert isinstance(wire._conn._parser, _HiredisParser)  # type: ignore[attr-defined]
    finally:
        wire.close()
        client.close()


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    commands = [("EVALSHA", "ab12", 2, "k:1", "k:ü", 0, -7, 1754.123456789, b"\x00raw", bytearray(b"ba")),
                ("PUBLISH", "ch", '[{"t":"x"}]'), ("PING",)]  # fmt: skip
    conn = redis.Connection()
    assert pack(commands) == b"".join(conn.pack_commands(commands))
    with pytest.raises(redis.DataError):
        pack([("SET", "k", True)])


def test_a_connection_redis_closed_is_opened_again(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    wire = Wire(client)
    try:
        [wire_id] = wire.run([("CLIENT", "ID")])
        assert client.client_kill_filter(_id=wire_id) == 1
        assert wire.run([("PING",)]) == ["PONG"]  # retried once on a fresh connection
    finally:
        wire.close()
        client.close()


def test_redis_down_raises_for_the_whole_call(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    wire = Wire(client)
    with pytest.raises(redis.ConnectionError):
        wire.run([("PING",)])
    wire.close()
    client.close()


def test_a_subscriber_reads_its_channel_in_order_and_ignores_others(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=0.5)
    sub = Subscriber(client, "wire:ch")
    try:
        sub.subscribe()
        time.sleep(0.7)  # longer than the client's read timeout: a quiet channel is no error
        for text in ("one", "two", "three"):
            assert client.publish("wire:ch", text) == 1
        client.publish("wire:other", "not ours")
        assert [sub.next() for _ in range(3)] == ["one", "two", "three"]
    finally:
        sub.close()
        client.close()


def test_closing_a_subscriber_ends_a_waiting_read(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    sub = Subscriber(client, "wire:ch")
    sub.subscribe()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            sub.next()
        except redis.RedisError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    sub.close()
    reader.join(5)
    assert not reader.is_alive() and len(errors) == 1 and sub.closed
    client.close()


def test_a_subscriber_whose_connection_redis_closed_raises(redis_server: RedisProc) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    sub = Subscriber(client, "wire:ch")
    try:
        sub.subscribe()
        assert client.client_kill_filter(_type="pubsub") >= 1
        with pytest.raises(redis.ConnectionError):
            sub.next()
        assert not sub.closed  # a failure, not our own close: the router reports it
    finally:
        sub.close()
        client.close()

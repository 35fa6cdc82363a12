"""One dedicated connection per lone caller (server.redis_wire), against a REAL redis-server."""

from __future__ import annotations

import pytest
import redis

from server.redis_wire import Wire
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

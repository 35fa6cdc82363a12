"""Several calls out at once on one Redis connection (server.redis_wire.Wire under
server.redis_batch.Batched), against a REAL redis-server: each caller gets its own answers,
in order, whatever the others do (fail, get killed, see Redis restart)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from server import redis_wire
from server.redis_batch import Batched
from server.redis_store import RedisStore
from server.redis_wire import Command, Wire
from server.store import SessionRecord, StoreUnavailable
from tests.server.helpers import wait_until
from tests.support.redis_proc import RedisProc


@pytest.fixture
def client(redis_server: RedisProc) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def _wire_client(client: redis.Redis, wire: Wire) -> dict[str, Any]:
    """CLIENT LIST's entry for the wire's connection."""
    [wire_id] = wire.run([("CLIENT", "ID")])
    [entry] = [e for e in client.client_list() if int(e["id"]) == wire_id]
    return entry


def _in_thread(results: dict[str, object], name: str, fn: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to look at
            results[name] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_a_call_made_while_another_is_out_is_written_at_once(client: redis.Redis) -> None:
    """With one batch out (a BLPOP Redis holds), the next call's commands are on the wire
    already (Redis holds them in the connection's query buffer), not waiting for that
    answer; both answers reach their own callers."""
    wire = Wire(client)
    batched: Batched[Command, Any] = Batched(wire.run)
    wire_id = int(_wire_client(client, wire)["id"])
    results: dict[str, object] = {}
    try:
        first = _in_thread(results, "first", batched.call, ("BLPOP", "lanes:q", 10))
        assert wait_until(lambda: _entry(client, wire_id)["cmd"] == "blpop", timeout=5)
        second = _in_thread(results, "second", batched.call, ("ECHO", "behind"))
        assert wait_until(lambda: int(_entry(client, wire_id)["qbuf"]) > 0, timeout=5)
        assert second.is_alive()  # its answer comes after the BLPOP's
        client.rpush("lanes:q", "x")
        first.join(10)
        second.join(10)
        assert results == {"first": ["lanes:q", "x"], "second": "behind"}
    finally:
        wire.close()


def _entry(client: redis.Redis, wire_id: int) -> dict[str, Any]:
    return next(e for e in client.client_list() if int(e["id"]) == wire_id)


def test_many_callers_at_once_each_get_their_own_answers_in_order(client: redis.Redis) -> None:
    """40 callers, 150 calls each, through one connection: every reply is the caller's own
    (ECHO), its commands ran in the order it sent them (INCR), and a command's error
    reaches that caller alone."""
    wire = Wire(client)
    batched: Batched[Command, Any] = Batched(wire.run)
    client.set("lanes:text", "not a number")
    problems: list[str] = []

    def caller(n: int) -> None:
        try:
            calls(n)
        except Exception as exc:  # noqa: BLE001 - a wire closed under a stuck caller
            problems.append(f"{n}: {exc!r}")

    def calls(n: int) -> None:
        key = f"lanes:count:{n}"
        for i in range(150):
            if i % 50 == 7:  # a failing command in the middle of everybody's traffic
                answer = wire.run([("INCR", "lanes:text"), ("ECHO", f"{n}/{i}")])
                if not (isinstance(answer[0], redis.ResponseError) and answer[1] == f"{n}/{i}"):
                    problems.append(f"{n}/{i}: {answer!r}")
                continue
            answers = [batched.call(("ECHO", f"{n}/{i}")), *wire.run([("INCR", key)])]
            if answers != [f"{n}/{i}", i + 1 - (i + 43) // 50]:
                problems.append(f"{n}/{i}: {answers!r}")

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(40)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        wire.close()  # (a caller waiting for an answer that never comes fails now)
        for t in threads:
            t.join(max(0.0, deadline + 5 - time.monotonic()))
        assert not [t for t in threads if t.is_alive()] and not problems, problems[:5]
        assert [int(v) for v in client.mget([f"lanes:count:{n}" for n in range(40)])] == [147] * 40
    finally:
        wire.close()
        client.delete("lanes:text", *[f"lanes:count:{n}" for n in range(40)])


class Killed(BaseException):
    """What gevent's kill or a Timeout raises inside a waiting greenlet."""


def test_a_caller_killed_while_its_call_is_out_leaves_the_replies_in_step(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The victim's call is out behind a BLPOP when it is killed, a third caller's behind
    it: the victim's reply is read and dropped, so the third gets its own."""
    kill = threading.Event()

    class KillableEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            while not super().wait(0.01):
                if threading.current_thread().name == "victim" and kill.is_set():
                    raise Killed
            return True

    monkeypatch.setattr(redis_wire.threading, "Event", KillableEvent)
    wire = Wire(client)
    wire_id = int(_wire_client(client, wire)["id"])
    results: dict[str, object] = {}
    try:
        blocked = _in_thread(results, "blocked", wire.run, [("BLPOP", "lanes:k", 10)])
        assert wait_until(lambda: _entry(client, wire_id)["cmd"] == "blpop", timeout=5)
        victim = _in_thread(results, "victim", wire.run, [("ECHO", "victim's")])
        assert wait_until(lambda: int(_entry(client, wire_id)["qbuf"]) > 0, timeout=5)
        kill.set()
        victim.join(5)
        assert isinstance(results["victim"], Killed)
        third = _in_thread(results, "third", wire.run, [("ECHO", "third's")])
        assert wait_until(lambda: int(_entry(client, wire_id)["qbuf"]) > len("victim's") + 20, timeout=5)
        client.rpush("lanes:k", "x")
        blocked.join(10)
        third.join(10)
        assert results["blocked"] == [["lanes:k", "x"]] and results["third"] == ["third's"]
        assert [wire.run([("ECHO", f"after {i}")]) for i in range(3)] == [[f"after {i}"] for i in range(3)]
    finally:
        wire.close()


def test_a_failed_batch_fails_its_callers_only(client: redis.Redis) -> None:
    """A run_many that raises (here: a bool Redis cannot take) fails that batch's caller; a
    batch out at the same time on the same connection is answered."""
    wire = Wire(client)
    batched: Batched[Command, Any] = Batched(wire.run)
    wire_id = int(_wire_client(client, wire)["id"])
    results: dict[str, object] = {}
    try:
        blocked = _in_thread(results, "blocked", batched.call, ("BLPOP", "lanes:f", 10))
        assert wait_until(lambda: _entry(client, wire_id)["cmd"] == "blpop", timeout=5)
        with pytest.raises(redis.DataError):
            batched.call_many([("ECHO", "fine"), ("SET", "lanes:f2", True)])
        client.rpush("lanes:f", "x")
        blocked.join(10)
        assert results == {"blocked": ["lanes:f", "x"]}
        assert batched.call(("ECHO", "next")) == "next"
    finally:
        wire.close()


def test_redis_killing_the_connection_fails_or_retries_only_the_calls_out_on_it(client: redis.Redis) -> None:
    """Redis drops the connection with two calls out: each had no reply, so each is sent
    once more on a fresh connection and answered there."""
    wire = Wire(client)
    wire_id = int(_wire_client(client, wire)["id"])
    results: dict[str, object] = {}
    try:
        blocked = _in_thread(results, "blocked", wire.run, [("BLPOP", "lanes:d", 1)])
        assert wait_until(lambda: _entry(client, wire_id)["cmd"] == "blpop", timeout=5)
        behind = _in_thread(results, "behind", wire.run, [("INCR", "lanes:d:n")])
        assert wait_until(lambda: int(_entry(client, wire_id)["qbuf"]) > 0, timeout=5)
        assert client.client_kill_filter(_id=wire_id) == 1
        blocked.join(10)
        behind.join(10)
        assert results == {"blocked": [None], "behind": [1]}  # the BLPOP ran again: no "x"
        assert int(_wire_client(client, wire)["id"]) != wire_id
    finally:
        wire.close()
        client.delete("lanes:d:n")


def test_a_node_store_recovers_when_redis_restarts_mid_batch(tmp_path: Path) -> None:
    """Redis restarted while calls are out: those calls fail (StoreUnavailable) or are sent
    again, none hangs or gets another's answer; while Redis is down a create is refused;
    once it is back the same store creates and joins (issue 11's fault rules)."""
    with RedisProc.start(tmp_path / "r", port=0) as proc:
        store = RedisStore.from_url(proc.url, prefix="lanes", max_sessions=5000, max_sessions_per_ip=5000)
        try:
            sessions = [store.create("10.1.0.1", version=2, client_type="cli", node="n") for _ in range(200)]
            assert all(isinstance(s, SessionRecord) for s in sessions)
            outcomes: list[object] = []
            go = threading.Barrier(21)

            def ender(chunk: list[SessionRecord | object]) -> None:
                go.wait()
                for record in chunk:
                    assert isinstance(record, SessionRecord)
                    try:
                        ended = store.end(record.id)
                        outcomes.append(ended.id == record.id if ended is not None else None)
                    except StoreUnavailable:
                        outcomes.append("unavailable")

            threads = [threading.Thread(target=ender, args=(sessions[i::20],)) for i in range(20)]
            for t in threads:
                t.start()
            go.wait()
            proc.stop()
            with pytest.raises(StoreUnavailable):
                store.create("10.1.0.1", version=2, client_type="cli", node="n")
            proc.restart()
            for t in threads:
                t.join(30)
            assert not any(t.is_alive() for t in threads)
            # an end answered is its own session's; one lost with Redis is None or refused
            assert len(outcomes) == 200 and set(outcomes) <= {True, None, "unavailable"}
            after: dict[str, object] = {}
            _in_thread(
                after, "created", store.create, "10.1.0.1", version=2, client_type="cli", node="n"
            ).join(30)
            created = after.get("created")
            assert isinstance(created, SessionRecord), created  # answered, on a fresh connection
            joined = store.join(created.id, version=2, client_type="cli", node="m")
            assert isinstance(joined, SessionRecord) and joined.receiver_node == "m"
        finally:
            store.close()

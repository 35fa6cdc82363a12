"""Concurrent calls folded into batches (server.redis_batch), and the Redis store using them."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from server import redis_batch
from server.redis_batch import Batched
from server.redis_store import RedisStore
from server.store import SessionRecord, StoreUnavailable
from tests.server.helpers import wait_until
from tests.support.redis_proc import RedisProc


class Recorder:
    """run_many that doubles its arguments, records each batch and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, args: Sequence[int]) -> list[int]:
        self.batches.append(list(args))
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise ConnectionError("down")
        return [2 * a for a in args]


def _call_all(batched: Batched[int, int], args: range, results: dict[int, object]) -> list[threading.Thread]:
    def one(arg: int) -> None:
        try:
            results[arg] = batched.call(arg)
        except Exception as exc:
            results[arg] = exc

    threads = [threading.Thread(target=one, args=(a,)) for a in args]
    for t in threads:
        t.start()
    return threads


def test_a_lone_call_goes_straight_through() -> None:
    run = Recorder()
    run.release.set()
    batched: Batched[int, int] = Batched(run)
    assert [batched.call(1), batched.call(2)] == [2, 4]
    assert run.batches == [[1], [2]]


def test_a_call_made_while_one_is_out_goes_at_once_and_call_many_goes_in_order() -> None:
    """No caller waits for another's batch (the wire under it pipelines them); one caller's
    calls go MAX_BATCH at a time, in order."""
    run = Recorder()
    batched: Batched[int, int] = Batched(run)
    results: dict[int, object] = {}
    first = _call_all(batched, range(1), results)
    assert run.entered.wait(5)
    second = _call_all(batched, range(1, 2), results)
    assert wait_until(lambda: [1] in run.batches, timeout=5)  # sent while [0] is out
    many: list[list[int]] = []
    caller = threading.Thread(
        target=lambda: many.append(batched.call_many(range(10, 10 + redis_batch.MAX_BATCH + 3)))
    )
    caller.start()
    run.release.set()
    for t in [*first, *second, caller]:
        t.join(10)
    assert results == {0: 0, 1: 2}
    assert many == [[2 * a for a in range(10, 10 + redis_batch.MAX_BATCH + 3)]]
    assert run.batches[2:] == [
        list(range(10, 10 + redis_batch.MAX_BATCH)),
        [10 + redis_batch.MAX_BATCH + i for i in range(3)],
    ]


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_goes_on() -> None:
    run = Recorder()
    run.fail = True
    batched: Batched[int, int] = Batched(run)
    results: dict[int, object] = {}
    threads = _call_all(batched, range(5), results)
    run.release.set()
    for t in threads:
        t.join(10)
    assert all(isinstance(r, ConnectionError) for r in results.values()) and len(results) == 5
    run.fail = False
    assert batched.call(7) == 14


def test_call_many_sends_every_batch_and_raises_the_first_failure() -> None:
    """A mass end whose first pipeline failed still sends the rest (each session ended
    that can be)."""
    calls: list[list[int]] = []

    def run(args: Sequence[int]) -> list[int]:
        calls.append(list(args))
        if len(calls) == 1:
            raise ConnectionError("down")
        return [2 * a for a in args]

    batched: Batched[int, int] = Batched(run)
    with pytest.raises(ConnectionError):
        batched.call_many(range(redis_batch.MAX_BATCH + 1))
    assert calls == [list(range(redis_batch.MAX_BATCH)), [redis_batch.MAX_BATCH]]


@pytest.fixture
def store(redis_server: RedisProc) -> RedisStore:
    return RedisStore.from_url(redis_server.url, prefix="batch", max_sessions=5000, max_sessions_per_ip=5000)


def test_a_mass_end_through_one_store_ends_each_session_once(store: RedisStore) -> None:
    """Thousands of handlers ending at once (a mass disconnect): every end answered with
    its own record, exactly once, and the store is empty after."""
    ids = []
    for _ in range(600):
        record = store.create("10.0.0.1", version=2, client_type="cli", node="n")
        assert isinstance(record, SessionRecord)
        ids.append(record.id)
    ended: dict[str, list[str | None]] = {sid: [] for sid in ids}
    barrier = threading.Barrier(len(ids) * 2)

    def end(sid: str) -> None:
        barrier.wait()
        record = store.end(sid)
        ended[sid].append(record.id if record is not None else None)

    threads = [threading.Thread(target=end, args=(sid,)) for sid in ids * 2]  # both sides end it
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(sorted(v, key=str) == sorted([None, sid], key=str) for sid, v in ended.items())
    assert store.count() == 0 and store.count_for_ip("10.0.0.1") == 0
    store.close()


def test_a_script_unknown_to_redis_is_loaded_again_within_a_batch(store: RedisStore) -> None:
    first = store.create("10.0.0.2", version=2, client_type="", node="n")
    assert isinstance(first, SessionRecord)
    store.r.script_flush()  # as after a Redis restart: every EVALSHA of a batch says NOSCRIPT
    assert store.touch_all({first.id, "nope"}) == {"nope"}
    results: dict[str, object] = {}

    def touch(sid: str) -> None:
        results[sid] = store.touch(sid)

    store.r.script_flush()
    threads = [threading.Thread(target=touch, args=(sid,)) for sid in (first.id, "a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {first.id: True, "a": False, "b": False, "c": False}
    store.close()


def test_background_work_never_holds_up_a_call_someone_waits_on(store: RedisStore) -> None:
    """Background ends (a teardown slice nobody waits on) and a new hello's create: the
    create goes at once, on its own connection. On one runner it queued behind every call
    waiting before it (here 196 pipelines of ends), and the welcome came after them all."""
    ids = [f"gone{i}" for i in range(50_000)]
    answers: list[list[SessionRecord | None]] = []

    def scripts_run() -> int:
        return int(store.r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    before = scripts_run()
    background = threading.Thread(target=lambda: answers.append(store.end_many(ids, background=True)))
    background.start()
    try:
        # the first pipeline is answered: the rest of the ends queue behind it
        assert wait_until(lambda: scripts_run() >= before + redis_batch.MAX_BATCH, timeout=60)
        created = store.create("10.0.0.3", version=2, client_type="cli", node="n")
        assert isinstance(created, SessionRecord)
        # the create did not wait for the background work (on one runner: all 50,000 first)
        assert scripts_run() - before <= len(ids) * 3 // 4
        assert store.waiting_sender_node(created.id) == "n"
    finally:
        background.join(60)
    assert answers == [[None] * len(ids)]  # and the background work was all answered, in order
    assert store.end(created.id) is not None
    store.close()


def test_redis_down_is_store_unavailable_for_a_batched_call(redis_server: RedisProc) -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:9/0", prefix="x", max_sessions=5, max_sessions_per_ip=5)
    with pytest.raises(StoreUnavailable):
        dead.end("abc")
    dead.close()

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


def test_calls_made_while_one_is_out_go_together_in_order() -> None:
    run = Recorder()
    batched: Batched[int, int] = Batched(run)
    results: dict[int, object] = {}
    first = _call_all(batched, range(1), results)
    assert run.entered.wait(5)
    waiting = _call_all(batched, range(1, 300), results)
    waiting[0].join(0.2)
    assert waiting[0].is_alive()  # held behind the first call
    run.release.set()
    for t in first + waiting:
        t.join(10)
    assert results == {a: 2 * a for a in range(300)}
    assert run.batches[0] == [0]
    later = [a for batch in run.batches[1:] for a in batch]
    assert sorted(later) == list(range(1, 300))  # each call answered exactly once
    assert max(map(len, run.batches)) == redis_batch.MAX_BATCH  # gathered, and capped
    assert len(run.batches) <= 4


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


class Killed(BaseException):
    """What gevent's kill or a Timeout raises inside a waiting greenlet."""


@pytest.mark.parametrize("handed", [False, True], ids=["waiting", "handed-the-lead"])
def test_a_caller_killed_while_waiting_leaves_and_passes_the_lead_on(
    monkeypatch: pytest.MonkeyPatch, handed: bool
) -> None:
    """Killed in its queue, or just after it was woken to lead (gevent may kill a greenlet
    whose wake-up has not run yet): the others are answered, its call never sent."""
    kill = threading.Event()

    class KillableEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            while True:
                woken = super().wait(0.01)
                if threading.current_thread().name == "victim" and kill.is_set() and woken == handed:
                    raise Killed
                if woken:
                    return True

    monkeypatch.setattr(redis_batch.threading, "Event", KillableEvent)
    run = Recorder()
    batched: Batched[int, int] = Batched(run)
    results: dict[int, object] = {}
    first = _call_all(batched, range(1), results)
    assert run.entered.wait(5)

    def victim() -> None:
        try:
            batched.call(100)
        except Killed:
            results[100] = "killed"

    doomed = threading.Thread(target=victim, name="victim")
    doomed.start()
    assert stays_waiting(doomed)
    others = _call_all(batched, range(1, 4), results)
    kill.set()
    if not handed:
        doomed.join(5)
    run.release.set()
    for t in [*first, *others, doomed]:
        t.join(10)
    assert results == {0: 0, 1: 2, 2: 4, 3: 6, 100: "killed"}
    assert 100 not in [a for batch in run.batches for a in batch]


def stays_waiting(thread: threading.Thread) -> bool:
    thread.join(0.2)
    return thread.is_alive()


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
        fresh = store.get(created.id)
        assert fresh is not None and fresh.sender_node == "n"
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

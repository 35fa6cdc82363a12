"""SessionStore contract: ids, caps, counters released on every path, expiry (with a fake
clock), atomic completion. Run against every backend (see conftest `make_store`)."""

from __future__ import annotations

import re
import threading

from server.relay import Refusal
from server.store import JoinRefused, SessionRecord
from sp2p.proto.signal import ErrorCode
from tests.server.conftest import Clock, StoreFactory


def created(result: SessionRecord | Refusal) -> SessionRecord:
    assert isinstance(result, SessionRecord), result
    return result


def test_ids_have_the_wire_shape(make_store: StoreFactory) -> None:
    store = make_store(max_sessions=100, max_sessions_per_ip=100)
    ids = set()
    for i in range(50):
        record = created(store.create(f"10.0.0.{i}", version=2, client_type="cli", node="n1"))
        assert re.fullmatch(r"[23456789abcdefghjkmnpqrstuvwxyz]{8}", record.id)
        ids.add(record.id)
    assert len(ids) == 50


def test_collisions_are_redrawn_and_exhaustion_is_internal_error(make_store: StoreFactory) -> None:
    draws = iter([bytes(32), bytes(32), bytes([1] * 32)])
    store = make_store(max_sessions=5, max_sessions_per_ip=5, random_bytes=lambda n: next(draws))
    first = created(store.create("a", version=2, client_type="", node="n"))
    second = created(store.create("a", version=2, client_type="", node="n"))
    assert first.id == "2" * 8 and second.id == "3" * 8
    stuck = make_store(max_sessions=5, max_sessions_per_ip=5, random_bytes=lambda n: bytes(32))
    stuck.create("a", version=2, client_type="", node="n")
    refused = stuck.create("a", version=2, client_type="", node="n")
    assert refused == Refusal(ErrorCode.INTERNAL_ERROR, "failed to create session")


def test_global_cap_is_checked_before_the_per_ip_cap(make_store: StoreFactory) -> None:
    store = make_store(max_sessions=2, max_sessions_per_ip=2)
    for _ in range(2):
        created(store.create("1.1.1.1", version=2, client_type="", node="n"))
    refused = store.create("1.1.1.1", version=2, client_type="", node="n")
    assert isinstance(refused, Refusal) and refused.code is ErrorCode.SERVER_BUSY
    other = make_store(max_sessions=10, max_sessions_per_ip=2)
    for _ in range(2):
        other.create("1.1.1.1", version=2, client_type="", node="n")
    refused = other.create("1.1.1.1", version=2, client_type="", node="n")
    assert refused == Refusal(ErrorCode.RATE_LIMITED, "too many active sessions from this IP")
    created(other.create("2.2.2.2", version=2, client_type="", node="n"))


def test_counters_released_on_end_and_end_is_idempotent(make_store: StoreFactory) -> None:
    store = make_store()
    record = created(store.create("1.1.1.1", version=2, client_type="", node="n"))
    assert store.count_for_ip("1.1.1.1") == 1
    assert store.end(record.id) == record
    assert store.end(record.id) is None
    assert store.count_for_ip("1.1.1.1") == 0 and store.count() == 0
    assert store.get(record.id) is None


def test_churn_leaves_nothing_behind(make_store: StoreFactory) -> None:
    store = make_store(max_sessions=10, max_sessions_per_ip=3)

    def churn(ip: str) -> None:
        for _ in range(100):
            s = store.create(ip, version=2, client_type="", node="n")
            if isinstance(s, SessionRecord):
                store.join(s.id, version=2, client_type="", node="m")
                store.end(s.id)

    threads = [threading.Thread(target=churn, args=(f"10.0.0.{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 0
    assert all(store.count_for_ip(f"10.0.0.{i}") == 0 for i in range(4))


def test_join_rules(make_store: StoreFactory) -> None:
    store = make_store()
    record = created(store.create("1.1.1.1", version=2, client_type="cli", node="n1"))
    missing = store.join("zzzzzzzz", version=2, client_type="", node="n2")
    assert isinstance(missing, JoinRefused)
    assert missing.refusal.code is ErrorCode.SESSION_NOT_FOUND
    wrong = store.join(record.id, version=1, client_type="", node="n2")
    assert isinstance(wrong, JoinRefused)
    assert wrong.refusal.code is ErrorCode.VERSION_MISMATCH
    assert wrong.notify_sender
    assert not created(store.get(record.id) or Refusal(ErrorCode.INTERNAL_ERROR, "")).joined  # W-6
    joined = store.join(record.id, version=2, client_type="browser", node="n2")
    assert isinstance(joined, SessionRecord)
    assert joined.joined and joined.receiver_client_type == "browser"
    assert (joined.sender_node, joined.receiver_node) == ("n1", "n2")
    assert joined.sender_client_type == "cli" and joined.sender_ip == "1.1.1.1"
    full = store.join(record.id, version=2, client_type="", node="n3")
    assert isinstance(full, JoinRefused) and full.refusal.code is ErrorCode.SESSION_FULL


def test_expiry_counts_touches(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store(clock=clock)
    record = created(store.create("1.1.1.1", version=2, client_type="", node="n"))
    clock.now += 200
    store.touch(record.id)  # a message, or a pong reported by the reaper
    clock.now += 200
    assert store.expired(idle=300, max_age=3600) == []
    clock.now += 150
    assert store.expired(idle=300, max_age=3600) == [record.id]
    store.touch(record.id)
    assert store.expired(idle=300, max_age=3600) == []
    clock.now = record.created + 3601
    store.touch(record.id)
    assert store.expired(idle=300, max_age=3600) == [record.id]  # max age wins over activity


def test_touch_all_notes_activity_and_names_the_gone(make_store: StoreFactory, clock: Clock) -> None:
    store = make_store(clock=clock, max_sessions_per_ip=5)
    kept, ended = (created(store.create("1.1.1.1", version=2, client_type="", node="n")) for _ in range(2))
    store.end(ended.id)
    clock.now += 200
    assert store.touch_all({kept.id, ended.id, "never-was"}) == {ended.id, "never-was"}
    clock.now += 200
    assert store.expired(idle=300, max_age=3600) == []  # kept was touched 200 s ago
    assert store.touch_all(set()) == set()
    strangers = {f"gone{i}" for i in range(2500)}  # past one Redis batch (TOUCH_BATCH)
    assert store.touch_all({kept.id, *strangers}) == strangers


def test_file_info_is_set_once(make_store: StoreFactory) -> None:
    store = make_store()
    record = created(store.create("a", version=2, client_type="", node="n"))
    assert store.set_file_info(record.id, "first") is True
    assert store.set_file_info(record.id, "second") is False
    assert (store.get(record.id) or record).file_info == "first"
    store.end(record.id)
    assert store.get(record.id) is None
    assert store.set_file_info(record.id, "late") is False


def test_a_transfer_is_marked_completed_once_when_both_peers_report_it(make_store: StoreFactory) -> None:
    """Both handlers see `transfer-complete` at once: exactly one may count it."""
    store = make_store()
    for _ in range(30):
        record = created(store.create("10.0.0.1", version=2, client_type="cli", node="n"))
        barrier = threading.Barrier(2)
        wins: list[bool] = []

        def report(
            sid: str = record.id, barrier: threading.Barrier = barrier, wins: list[bool] = wins
        ) -> None:
            barrier.wait()
            wins.append(store.mark_completed(sid, 1000))

        threads = [threading.Thread(target=report) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False, True]
        store.end(record.id)
    totals = store.counters().totals()
    assert (totals["completedSends"], totals["bytesTransferred"]) == (30, 30_000)


def test_the_store_counts_in_the_step_it_counts(make_store: StoreFactory) -> None:
    """attempted with create, connected with join, completed and bytes with the first
    mark_completed; refusals count nothing; seed only fills fields not counted yet."""
    store = make_store()
    store.counters().seed({"attemptedSends": 10, "connectedSends": 5, "completedSends": 0})
    record = created(store.create("1.1.1.1", version=2, client_type="", node="n"))
    created(store.create("1.1.1.1", version=2, client_type="", node="n"))
    assert isinstance(store.create("1.1.1.1", version=2, client_type="", node="n"), Refusal)  # per-IP cap
    assert isinstance(store.join(record.id, version=2, client_type="", node="n"), SessionRecord)
    assert isinstance(store.join(record.id, version=2, client_type="", node="n"), JoinRefused)
    assert store.mark_completed(record.id, 123) and not store.mark_completed(record.id, 456)
    store.end(record.id)
    assert not store.mark_completed(record.id, 789)
    store.counters().seed({"attemptedSends": 0, "bytesTransferred": 1})
    assert store.counters().totals() == {
        "attemptedSends": 12, "connectedSends": 6, "completedSends": 1, "bytesTransferred": 123,
    }


def test_window_limiter_counts_per_key(make_store: StoreFactory) -> None:
    limiter = make_store().limiter("t", 3, 60.0)
    assert [limiter.hit("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.exceeded("a") and not limiter.exceeded("b")
    assert limiter.hit("b")
    unlimited = make_store().limiter("u", 0, 60.0)
    assert not unlimited.enabled and all(unlimited.hit("a") for _ in range(10))

"""SessionRegistry: ids, caps, counters released on every path, expiry (with a fake clock)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from server.relay import Refusal
from server.sessions import JoinRefused, Session, SessionRegistry
from sp2p.proto.signal import ErrorCode


@dataclass(eq=False)
class FakePeer:
    ip: str
    last_activity: float = 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def registry(clock: Clock | None = None, **kwargs: int) -> SessionRegistry:
    limits = {"max_sessions": 5, "max_sessions_per_ip": 2}
    limits.update(kwargs)
    return SessionRegistry(clock=clock or Clock(), **limits)


def test_ids_have_the_wire_shape() -> None:
    reg = registry(max_sessions=100, max_sessions_per_ip=100)
    ids = set()
    for i in range(50):
        session = reg.create(FakePeer(f"10.0.0.{i}"), version=2, client_type="cli")
        assert isinstance(session, Session)
        assert re.fullmatch(r"[23456789abcdefghjkmnpqrstuvwxyz]{8}", session.id)
        ids.add(session.id)
    assert len(ids) == 50


def test_collisions_are_redrawn_and_exhaustion_is_internal_error() -> None:
    draws = iter([bytes(32), bytes(32), bytes([1] * 32)])
    reg = SessionRegistry(max_sessions=5, max_sessions_per_ip=5, random_bytes=lambda n: next(draws))
    first = reg.create(FakePeer("a"), version=2, client_type="")
    second = reg.create(FakePeer("a"), version=2, client_type="")
    assert isinstance(first, Session) and isinstance(second, Session)
    assert first.id == "2" * 8 and second.id == "3" * 8
    stuck = SessionRegistry(max_sessions=5, max_sessions_per_ip=5, random_bytes=lambda n: bytes(32))
    stuck.create(FakePeer("a"), version=2, client_type="")
    refused = stuck.create(FakePeer("a"), version=2, client_type="")
    assert refused == Refusal(ErrorCode.INTERNAL_ERROR, "failed to create session")


def test_global_cap_is_checked_before_the_per_ip_cap() -> None:
    reg = registry(max_sessions=2, max_sessions_per_ip=2)
    for _ in range(2):
        assert isinstance(reg.create(FakePeer("1.1.1.1"), version=2, client_type=""), Session)
    refused = reg.create(FakePeer("1.1.1.1"), version=2, client_type="")
    assert isinstance(refused, Refusal) and refused.code is ErrorCode.SERVER_BUSY
    reg2 = registry(max_sessions=10, max_sessions_per_ip=2)
    for _ in range(2):
        reg2.create(FakePeer("1.1.1.1"), version=2, client_type="")
    refused = reg2.create(FakePeer("1.1.1.1"), version=2, client_type="")
    assert refused == Refusal(ErrorCode.RATE_LIMITED, "too many active sessions from this IP")
    assert isinstance(reg2.create(FakePeer("2.2.2.2"), version=2, client_type=""), Session)


def test_counters_released_on_end_and_end_is_idempotent() -> None:
    reg = registry()
    session = reg.create(FakePeer("1.1.1.1"), version=2, client_type="")
    assert isinstance(session, Session)
    assert reg.count_for_ip("1.1.1.1") == 1
    assert reg.end(session) is True
    assert reg.end(session) is False
    assert reg.count_for_ip("1.1.1.1") == 0 and len(reg) == 0
    assert reg.get(session.id) is None and reg.file_info(session.id) is None


def test_churn_leaves_nothing_behind() -> None:
    reg = registry(max_sessions=10, max_sessions_per_ip=3)

    def churn(ip: str) -> None:
        for _ in range(300):
            s = reg.create(FakePeer(ip), version=2, client_type="")
            if isinstance(s, Session):
                reg.join(s.id, FakePeer("r"), version=2, client_type="")
                reg.end(s)

    threads = [threading.Thread(target=churn, args=(f"10.0.0.{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reg) == 0
    assert all(reg.count_for_ip(f"10.0.0.{i}") == 0 for i in range(4))


def test_join_rules() -> None:
    reg = registry()
    sender = FakePeer("1.1.1.1")
    session = reg.create(sender, version=2, client_type="cli")
    assert isinstance(session, Session)
    missing = reg.join("zzzzzzzz", FakePeer("r"), version=2, client_type="")
    assert isinstance(missing, JoinRefused)
    assert missing.refusal.code is ErrorCode.SESSION_NOT_FOUND
    wrong = reg.join(session.id, FakePeer("r"), version=1, client_type="")
    assert isinstance(wrong, JoinRefused)
    assert wrong.refusal.code is ErrorCode.VERSION_MISMATCH
    assert wrong.notify_sender is sender
    assert session.receiver is None  # the slot is not lost (W-6)
    receiver = FakePeer("r")
    assert reg.join(session.id, receiver, version=2, client_type="browser") is session
    assert session.receiver is receiver and session.receiver_client_type == "browser"
    full = reg.join(session.id, FakePeer("x"), version=2, client_type="")
    assert isinstance(full, JoinRefused) and full.refusal.code is ErrorCode.SESSION_FULL


def test_expiry_counts_any_activity() -> None:
    clock = Clock()
    reg = registry(clock)
    sender = FakePeer("1.1.1.1", last_activity=clock.now)
    session = reg.create(sender, version=2, client_type="")
    assert isinstance(session, Session)
    clock.now += 200
    sender.last_activity = clock.now  # e.g. a pong
    clock.now += 200
    assert reg.expired(idle=300, max_age=3600) == []
    clock.now += 150
    assert reg.expired(idle=300, max_age=3600) == [session]
    sender.last_activity = clock.now
    assert reg.expired(idle=300, max_age=3600) == []
    clock.now = session.created + 3601
    sender.last_activity = clock.now
    assert reg.expired(idle=300, max_age=3600) == [session]  # max age wins over activity


def test_file_info_is_set_once() -> None:
    reg = registry()
    session = reg.create(FakePeer("a"), version=2, client_type="")
    assert isinstance(session, Session)
    assert reg.set_file_info(session, "first") is True
    assert reg.set_file_info(session, "second") is False
    assert reg.file_info(session.id) == "first"
    reg.end(session)
    assert reg.file_info(session.id) is None


def test_a_transfer_is_marked_completed_once_when_both_peers_report_it() -> None:
    """Both handlers see `transfer-complete` at once: exactly one may count it."""
    reg = registry()
    for _ in range(50):
        session = reg.create(FakePeer("10.0.0.1"), version=2, client_type="cli")
        assert isinstance(session, Session)
        barrier = threading.Barrier(2)
        wins: list[bool] = []

        def report(
            session: Session = session, barrier: threading.Barrier = barrier, wins: list[bool] = wins
        ) -> None:
            barrier.wait()
            wins.append(reg.mark_completed(session))

        threads = [threading.Thread(target=report) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False, True]
        reg.end(session)

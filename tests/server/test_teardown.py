"""Ending the sessions of connections that went away (server.teardown.Teardowns): queued,
ended in slices by one worker, sessions someone waits on first; and the Redis store's
end_many, which a slice uses (one pipeline through server.redis_batch.Batched.call_many)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from server.connection import Peer
from server.metrics import Metrics
from server.redis_batch import MAX_BATCH, Batched
from server.router import LocalRouter
from server.sessions import MemoryStore
from server.store import SessionRecord, SessionStore
from server.teardown import SLICE, Teardowns
from sp2p.proto.constants import Role
from tests.server.conftest import BACKENDS, StoreFactory
from tests.server.helpers import wait_until

IP = "192.0.2.7"


class Node:
    """What a teardown touches, real: a store, the local router, the metrics."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.router = LocalRouter()
        self.metrics = Metrics()


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _open(store: SessionStore, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        record = store.create(IP, version=2, client_type="cli", node="n")
        assert isinstance(record, SessionRecord)
        ids.append(record.id)
    return ids


def test_a_session_someone_waits_on_ends_before_thousands_queued_ahead(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    store = MemoryStore(max_sessions=100_000, max_sessions_per_ip=100_000)
    node = Node(store)
    background = _open(store, 5000)
    paired = _open(store, 1)[0]
    assert isinstance(store.join(paired, version=2, client_type="cli", node="n"), SessionRecord)
    ours, client = socket_pair
    receiver = Peer(ours, "127.0.0.1", write_timeout=5.0, ping_interval=0, max_message=65536)
    assert node.router.attach(paired, Role.RECEIVER, receiver)
    teardowns = Teardowns(node)
    for session_id in background:  # 5,000 senders nobody joined left at once...
        teardowns.leave(session_id, Role.SENDER, urgent=False)
    teardowns.leave(paired, Role.SENDER, urgent=True)  # ...then one whose receiver waits
    client.settimeout(10)
    assert b"peer-left" in client.recv(65536)
    left = store.count()
    assert left > len(background) // 2, f"peer-left only after {len(background) - left} other ends"
    assert wait_until(lambda: store.count() == 0 and teardowns.queued == 0, timeout=20)
    assert store.count_for_ip(IP) == 0


def test_drain_ends_everything_queued_at_once() -> None:
    store = MemoryStore(max_sessions=10_000, max_sessions_per_ip=10_000)
    teardowns = Teardowns(Node(store))
    ids = _open(store, 3 * SLICE + 5)
    for session_id in ids:
        teardowns.leave(session_id, Role.SENDER, urgent=False)
    teardowns.drain()
    assert teardowns.queued == 0
    assert store.count() == 0


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_end_many_ends_each_once_on_both_backends(make_store: StoreFactory) -> None:
    store = make_store(max_sessions=10, max_sessions_per_ip=10)
    ids = _open(store, 5)
    ended = store.end_many([ids[0], "nosuchid", *ids[1:], ids[0]])
    assert [r.id if r else None for r in ended] == [ids[0], None, *ids[1:], None]
    assert store.count() == 0
    assert store.count_for_ip(IP) == 0


class Recorder:
    """run_many that doubles its arguments and records each batch; can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, args: Sequence[int]) -> list[int]:
        self.batches.append(list(args))
        self.entered.set()
        assert self.release.wait(10)
        return [2 * a for a in args]


def test_call_many_goes_in_one_batch_behind_a_call_in_flight_answered_in_order() -> None:
    run = Recorder()
    batched: Batched[int, int] = Batched(run)
    first: list[int] = []
    alone = threading.Thread(target=lambda: first.append(batched.call(1)))
    alone.start()
    assert run.entered.wait(5)
    many: list[list[int]] = []
    caller = threading.Thread(target=lambda: many.append(batched.call_many(list(range(10, 10 + MAX_BATCH + 3)))))
    caller.start()
    caller.join(0.2)
    assert caller.is_alive()  # waits behind the call in flight
    run.release.set()
    alone.join(10)
    caller.join(10)
    assert first == [2]
    assert many == [[2 * a for a in range(10, 10 + MAX_BATCH + 3)]]
    assert run.batches[1:] == [list(range(10, 10 + MAX_BATCH)), list(range(10 + MAX_BATCH, 13 + MAX_BATCH))]
    assert batched.call_many([]) == []

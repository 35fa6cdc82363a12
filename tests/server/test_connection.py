"""server/connection.py: one Peer over a real socket pair, the handler reading in its own
thread (as werkzeug runs it; tests/server/test_gevent_worker.py covers greenlets)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from server import connection, wsframe
from server.connection import Peer, PeerClosed
from server.write_batch import WriteBatch
from tests.server.test_gevent_worker import masked_frame


@pytest.fixture
def pair() -> Iterator[tuple[Peer, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    peer = Peer(ours, "127.0.0.1", write_timeout=2.0, ping_interval=30.0, max_message=1000)
    try:
        yield peer, theirs
    finally:
        ours.close()
        theirs.close()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_pings_are_answered_and_count_as_activity(pair: tuple[Peer, socket.socket]) -> None:
    peer, theirs = pair
    before = peer.last_activity
    time.sleep(0.05)
    theirs.sendall(masked_frame(0x9, b"hi") + masked_frame(0x1, b'{"type":"x"}'))
    assert peer.receive(timeout=2) == '{"type":"x"}'
    assert theirs.recv(16) == b"\x8a\x02hi"  # the pong, before any message of ours
    assert peer.last_activity > before
    assert peer.send_text("back")
    assert theirs.recv(16) == b"\x81\x04back"


def test_several_messages_in_one_read_come_out_in_order(pair: tuple[Peer, socket.socket]) -> None:
    peer, theirs = pair
    theirs.sendall(b"".join(masked_frame(0x1, str(i).encode()) for i in range(5)))
    assert [peer.receive(timeout=2) for _ in range(5)] == ["0", "1", "2", "3", "4"]
    assert peer.receive(timeout=0.05) is None


def test_binary_utf8_is_text_and_other_binary_is_dropped(pair: tuple[Peer, socket.socket]) -> None:
    peer, theirs = pair
    theirs.sendall(masked_frame(0x2, b"\xff") + masked_frame(0x2, "é".encode()))
    assert peer.receive(timeout=2) == "é"


def test_oversize_closes_with_1009_then_a_clean_eof(pair: tuple[Peer, socket.socket]) -> None:
    peer, theirs = pair
    theirs.sendall(masked_frame(0x1, b"x" * 5000))
    with pytest.raises(PeerClosed):
        peer.receive(timeout=2)
    theirs.shutdown(socket.SHUT_WR)
    peer.finish()
    data = read_all(theirs)  # a reset here would be the regression
    assert data[:2] == b"\x88\x14" and int.from_bytes(data[2:4], "big") == 1009


def test_client_close_is_answered(pair: tuple[Peer, socket.socket]) -> None:
    peer, theirs = pair
    theirs.sendall(masked_frame(0x8, (1001).to_bytes(2, "big")))
    with pytest.raises(PeerClosed):
        peer.receive(timeout=2)
    assert theirs.recv(16) == b"\x88\x02\x03\xe9"
    assert not peer.send_text("late")  # nothing goes out after the close


def test_a_close_from_elsewhere_ends_a_waiting_handler_even_if_the_client_is_silent(
    pair: tuple[Peer, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "CLOSE_GRACE", 0.2)
    peer, theirs = pair
    ended: list[float] = []

    def handler() -> None:
        with pytest.raises(PeerClosed):
            peer.receive(timeout=10)
        ended.append(time.monotonic())

    thread = threading.Thread(target=handler)
    thread.start()
    time.sleep(0.1)
    closed_at = time.monotonic()
    peer.close(1001, "bye")
    thread.join(3)
    assert ended and ended[0] - closed_at < 1.5
    assert theirs.recv(16)[:4] == b"\x88\x05\x03\xe9"


def test_our_pings_and_a_missed_pong_closes_with_1008() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.settimeout(5)
        peer = Peer(ours, "127.0.0.1", write_timeout=2.0, ping_interval=0.2, max_message=1000)
        assert peer.receive(timeout=0.3) is None  # one ping went out meanwhile
        assert theirs.recv(2) == b"\x89\x00"
        theirs.sendall(masked_frame(0xA, b""))  # answered: the next ping comes, no close
        assert peer.receive(timeout=0.15) is None
        assert theirs.recv(2) == b"\x89\x00"
        with pytest.raises(PeerClosed):  # not answered: closed at the following one
            peer.receive(timeout=1.0)
        frame = theirs.recv(64)
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1008


def test_a_client_that_does_not_read_is_cut_after_the_write_timeout() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer = Peer(ours, "127.0.0.1", write_timeout=0.3, ping_interval=30.0, max_message=1000)
        started = time.monotonic()
        while peer.send_text("x" * 60_000):
            assert time.monotonic() - started < 5
        assert peer.closed and time.monotonic() - started < 3


def test_write_batch_holds_relays_in_order_until_flush_and_any_other_write_sends_them_first() -> None:
    a, b = socket.socketpair()
    try:
        peer = Peer(a, "127.0.0.1", write_timeout=5.0, ping_interval=0, max_message=1 << 16)
        batch = WriteBatch()
        with batch.holding():
            assert peer.send_text("one") and peer.send_text("two")
        b.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            assert b.recv(100) == b"", "nothing may leave before the flush"
        with batch.holding():
            peer.send_text("three")
        peer.close(1000, "")  # another write: the held frames go first, in order
        b.settimeout(2)
        expected = b"".join(
            [wsframe.text_frame(t) for t in ("one", "two", "three")] + [wsframe.close_frame(1000, "")]
        )
        got = b""
        while len(got) < len(expected):
            got += b.recv(1000)
        assert got == expected
        batch.flush()  # nothing left: no second copy
        b.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            assert b.recv(100) == b""
    finally:
        a.close()
        b.close()

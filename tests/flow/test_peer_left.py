"""The peer leaving mid-connect (client.md §4.5): its verdict is worth waiting for only while a
candidate is undecided: one exchanging MACs (the peer may have confirmed on it and closed its
signaling at once, v2), one held for TCP, or a wrong MAC in its grace. With none, connect.py
still waited PEER_LEFT_GRACE (3 s) before saying the peer left."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from sp2p.net.race import ConfirmationRace
from sp2p.net.tcp import TcpChannel
from sp2p.proto.keys import SessionKeys
from sp2p.proto.race import RacePolicy
from tests.support.files import session_keys


@contextlib.contextmanager
def _offered() -> Iterator[tuple[ConfirmationRace, threading.Thread, socket.socket, SessionKeys]]:
    """A race with a real TCP-socket candidate offered to it (confirming on its own thread):
    (the race, that thread, the peer's end of the socket, the peer's keys); closed after."""
    ours, peers = session_keys()
    race = ConfirmationRace(ours, read_first=True)
    mine, theirs = socket.socketpair()
    thread = threading.Thread(target=race.offer, args=(TcpChannel(mine, dialed=False),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not race.undecided:
            assert time.monotonic() < deadline, "the candidate never started confirming"
            time.sleep(0.01)
        yield race, thread, theirs, peers
    finally:
        race.close()
        theirs.close()


def test_a_race_with_no_candidate_has_nothing_to_wait_for() -> None:
    race = ConfirmationRace(session_keys()[0], read_first=True)
    assert not race.undecided
    race.close()


def test_a_candidate_is_undecided_until_its_mac_checks_out() -> None:
    with _offered() as (race, thread, theirs, peers):
        assert race.undecided  # the peer may have confirmed on it already
        theirs.sendall(peers.own_confirmation())
        thread.join(10)
        winner = race.poll_quiet()
        assert winner is not None
        winner.close()
        assert not race.undecided


def test_a_wrong_mac_stays_undecided_for_its_grace() -> None:
    with _offered() as (race, thread, theirs, _peers):
        theirs.sendall(bytes(32))
        thread.join(10)
        assert race.poll_quiet() is None
        assert race.undecided  # the wrong-code verdict is still to come


def test_a_channel_held_for_tcp_is_pending() -> None:
    policy: RacePolicy[str] = RacePolicy(prefer_tcp_window=6.0)
    assert not policy.holding
    policy.confirmed("webrtc", tcp=False, now=0.0)
    assert policy.holding
    policy.handle_timer(6.0)
    assert not policy.holding and policy.winner == "webrtc"

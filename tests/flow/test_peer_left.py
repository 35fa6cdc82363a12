"""The peer leaving mid-connect (client.md §4.5): its verdict is worth waiting for only while a
candidate is undecided: one exchanging MACs (the peer may have confirmed on it and closed its
signaling at once, v2), one held for TCP, or a wrong MAC in its grace. With none, connect.py
still waited PEER_LEFT_GRACE (3 s) before saying the peer left."""

from __future__ import annotations

import socket
import threading
import time

from sp2p.net.race import ConfirmationRace
from sp2p.net.tcp import TcpChannel
from sp2p.proto.race import RacePolicy
from tests.support.files import session_keys


def _offered(race: ConfirmationRace) -> tuple[threading.Thread, socket.socket]:
    """A real TCP-socket candidate offered to `race` (confirming on its own thread); our end of it."""
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=race.offer, args=(TcpChannel(ours, dialed=False),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not race.undecided:
        assert time.monotonic() < deadline, "the candidate never started confirming"
        time.sleep(0.01)
    return thread, theirs


def test_a_race_with_no_candidate_has_nothing_to_wait_for() -> None:
    race = ConfirmationRace(session_keys()[0], read_first=True)
    assert not race.undecided
    race.close()


def test_a_candidate_is_undecided_until_its_mac_checks_out() -> None:
    ours, peers = session_keys()
    race = ConfirmationRace(ours, read_first=True)
    thread, theirs = _offered(race)
    try:
        assert race.undecided  # the peer may have confirmed on it already
        theirs.sendall(peers.own_confirmation())
        thread.join(10)
        winner = race.poll_quiet()
        assert winner is not None
        winner.close()
        assert not race.undecided
    finally:
        race.close()
        theirs.close()


def test_a_wrong_mac_stays_undecided_for_its_grace() -> None:
    ours, _ = session_keys()
    race = ConfirmationRace(ours, read_first=True)
    thread, theirs = _offered(race)
    try:
        theirs.sendall(bytes(32))
        thread.join(10)
        assert race.poll_quiet() is None
        assert race.undecided  # the wrong-code verdict is still to come
    finally:
        race.close()
        theirs.close()


def test_a_channel_held_for_tcp_is_pending() -> None:
    policy: RacePolicy[str] = RacePolicy(prefer_tcp_window=6.0)
    assert not policy.holding
    policy.confirmed("webrtc", tcp=False, now=0.0)
    assert policy.holding
    policy.handle_timer(6.0)
    assert not policy.holding and policy.winner == "webrtc"

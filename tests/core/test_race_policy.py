"""The connection race's policy (sp2p.proto.race) driven with events and `now` alone:
no sockets, no threads, no sleeps."""

from __future__ import annotations

from sp2p.proto.race import BAD_MAC_GRACE, Outcome, RacePolicy

WINDOW = 2.0


def test_without_a_window_the_first_confirmed_channel_wins_and_later_ones_lose() -> None:
    race: RacePolicy[str] = RacePolicy()
    assert race.confirmed("webrtc", tcp=False, now=0.0) == Outcome(winner="webrtc")
    assert race.confirmed("tcp", tcp=True, now=0.1) == Outcome(close=("tcp",))
    assert race.winner == "webrtc" and race.get_timer() is None


def test_a_non_tcp_win_is_held_and_tcp_confirming_in_the_window_takes_over() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    assert race.confirmed("webrtc", tcp=False, now=10.0) == Outcome()
    assert race.winner is None and race.get_timer() == 10.0 + WINDOW
    assert race.handle_timer(11.9) == Outcome()
    assert race.confirmed("tcp", tcp=True, now=11.9) == Outcome(winner="tcp", close=("webrtc",))
    assert race.winner == "tcp" and race.get_timer() is None


def test_the_held_channel_wins_when_the_window_is_over() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    race.confirmed("webrtc", tcp=False, now=10.0)
    assert race.handle_timer(10.0 + WINDOW) == Outcome(winner="webrtc")
    assert race.confirmed("tcp", tcp=True, now=12.5) == Outcome(close=("tcp",))


def test_a_upnp_mapping_restarts_the_window() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    race.confirmed("webrtc", tcp=False, now=0.0)
    race.restart_prefer_window(1.5)
    assert race.get_timer() == 1.5 + WINDOW
    assert race.handle_timer(WINDOW) == Outcome()
    assert race.handle_timer(1.5 + WINDOW) == Outcome(winner="webrtc")


def test_tcp_is_never_held() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    assert race.confirmed("tcp", tcp=True, now=0.0) == Outcome(winner="tcp")


def test_a_wrong_mac_calls_the_code_wrong_only_after_the_grace_time() -> None:
    race: RacePolicy[str] = RacePolicy()
    race.bad_mac(5.0)
    race.bad_mac(6.0)  # the first one starts the grace time
    assert race.bad_mac_seen
    assert not race.wrong_code(5.0 + BAD_MAC_GRACE)
    assert race.wrong_code(5.0 + BAD_MAC_GRACE + 0.01)


def test_a_real_channel_within_the_grace_time_wins_over_a_strangers_wrong_mac() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    race.bad_mac(0.0)
    race.confirmed("webrtc", tcp=False, now=1.0)
    assert not race.wrong_code(100.0)  # held: not wrong
    race.handle_timer(1.0 + WINDOW)
    assert race.winner == "webrtc" and not race.wrong_code(100.0)


def test_after_close_nothing_wins_and_the_held_channel_is_handed_back() -> None:
    race: RacePolicy[str] = RacePolicy(prefer_tcp_window=WINDOW)
    race.confirmed("webrtc", tcp=False, now=0.0)
    assert race.close() == ("webrtc",)
    assert race.close() == ()
    assert race.confirmed("tcp", tcp=True, now=0.5) == Outcome(close=("tcp",))
    assert race.handle_timer(10.0) == Outcome() and race.winner is None

"""The SCTP tuning's arithmetic (sp2p/net/webrtc_sctp_math.py) with numbers."""

from __future__ import annotations

import pytest

from sp2p.net import webrtc_sctp_math as m

MTU = 1188  # aiortc's USERDATA_MAX_LENGTH


def test_tsn_serial_comparison_wraps() -> None:
    assert m.tsn_gt(5, 4) and not m.tsn_gt(4, 5) and not m.tsn_gt(7, 7)
    assert m.tsn_gt(0, 2**32 - 1)  # just past the wrap
    assert not m.tsn_gt(2**32 - 1, 0)
    assert m.tsn_next(2**32 - 1) == 0


def sack_gaps(last: int, misordered: set[int]) -> list[tuple[int, int]]:
    return m.gap_offsets(last, m.gap_blocks(last, misordered))


def test_sack_gaps_merge_runs_and_wrap() -> None:
    last = 2**32 - 2
    # received out of order: last+2, last+3 (0 and 1 after the wrap), last+5
    assert m.gap_blocks(last, {0, 1, 3}) == [[0, 1], [3, 3]]
    assert sack_gaps(last, {0, 1, 3}) == [(2, 3), (5, 5)]
    assert sack_gaps(10, set()) == []


def test_sack_gaps_fit_one_packet() -> None:
    every_other = {100 + 2 * i for i in range(1, 1000)}  # 999 single-TSN gaps
    gaps = sack_gaps(100, every_other)
    assert len(gaps) == m.SACK_MAX_GAPS == 200
    assert gaps[0] == (2, 2) and gaps[-1] == (400, 400)
    assert 16 + 4 * (m.SACK_MAX_GAPS + m.SACK_MAX_DUPLICATES) < 1189
    assert sack_gaps(0, {70000}) == []  # past a 16-bit offset
    assert sack_gaps(0, set(range(65530, 65540))) == [(65530, 65535)]  # cut at it


def test_extend_blocks_after_a_loss() -> None:
    blocks: list[list[int]] = []
    for tsn in (12, 13, 14, 20, 21):  # 11 and 15-19 lost
        assert m.extend_blocks(blocks, tsn)
    assert blocks == [[12, 14], [20, 21]]
    assert not m.extend_blocks(blocks, 17)  # inside: the caller rebuilds
    wrap = [[2**32 - 1, 2**32 - 1]]
    assert m.extend_blocks(wrap, 0) and wrap == [[2**32 - 1, 0]]


def test_patched_mark_received_keeps_the_runs_current() -> None:
    """Random arrival orders with losses and duplicates: the runs the receive patch keeps
    incrementally give the same SACK gaps as sorting the whole set each time."""
    import random

    from aiortc import rtcsctptransport

    from sp2p.net import webrtc_sctp

    assert webrtc_sctp.apply()
    cls = rtcsctptransport.RTCSctpTransport
    rng = random.Random(7)
    for start in (1000, 2**32 - 50):
        sctp = cls.__new__(cls)
        sctp._last_received_tsn = start - 1
        sctp._sack_misordered = set()
        sctp._sack_duplicates = []
        arrivals = [(start + i) % 2**32 for i in range(600)]
        rng.shuffle(arrivals[100:300])  # reordering
        arrivals += [(start + i) % 2**32 for i in rng.sample(range(600), 40)]  # duplicates
        for tsn in arrivals:
            if rng.random() < 0.05:
                continue  # lost
            cls._mark_received(sctp, tsn)
            if rng.random() < 0.3:
                last = sctp._last_received_tsn
                blocks = sctp.__dict__.get("_sp2p_blocks")
                if blocks is None or sctp.__dict__.get("_sp2p_blocks_of") is not sctp._sack_misordered:
                    sctp._sp2p_blocks = blocks = m.gap_blocks(last, sctp._sack_misordered)
                    sctp._sp2p_blocks_of = sctp._sack_misordered
                assert m.gap_offsets(last, blocks) == sack_gaps(last, sctp._sack_misordered)


@pytest.mark.parametrize(
    ("unacked", "quick", "irregular", "established", "now"),
    [
        (1, False, False, True, False),
        (3, False, False, True, False),
        (4, False, False, True, True),  # every fourth packet
        (2, True, False, True, True),  # quick-ack: every second
        (1, True, False, True, False),
        (1, False, True, True, True),  # gap or duplicate: at once
        (1, False, False, False, True),  # not established (shutdown): at once
    ],
)
def test_when_a_sack_goes_out(unacked: int, quick: bool, irregular: bool, established: bool, now: bool) -> None:
    assert m.sack_now(unacked, quick=quick, irregular=irregular, established=established) is now


def test_a_cli_sender_is_sacked_every_eighth_packet() -> None:  # A3, A4
    go = {"quick": False, "irregular": False, "established": True, "every": m.CLI_SACK_EVERY}
    assert not m.sack_now(4, **go) and not m.sack_now(7, **go)
    assert m.sack_now(8, **go)
    assert m.sack_now(2, **{**go, "quick": True})  # after a loss, as for any peer
    assert m.sack_now(1, **{**go, "irregular": True})


def test_queue_estimate_is_vegas() -> None:
    assert m.queue_bytes(1_000_000, None, 0.01) == 0.0
    assert m.queue_bytes(1_000_000, 0.02, None) == 0.0
    assert m.queue_bytes(1_000_000, 0.02, 0.02) == 0.0
    assert m.queue_bytes(1_000_000, 0.04, 0.01) == pytest.approx(750_000)  # 3/4 of it waits


def test_slow_start_byte_counting_up_to_a_stretch_sack() -> None:
    w = m.Window(cwnd=10 * MTU, ssthresh=10**9, partial_bytes_acked=0)
    m.grow(w, 2 * MTU, queue=0, target=256 * 1024, mtu=MTU)
    assert w.cwnd == 12 * MTU
    m.grow(w, 10 * MTU, queue=0, target=256 * 1024, mtu=MTU)  # capped at CLI_SACK_EVERY packets
    assert w.cwnd == 20 * MTU


def test_slow_start_goes_gentle_past_half_the_target_and_holds_at_it() -> None:
    target = 256 * 1024
    w = m.Window(cwnd=100 * MTU, ssthresh=10**9, partial_bytes_acked=0)
    m.grow(w, 4 * MTU, queue=target * 0.6, target=target, mtu=MTU)
    assert w.cwnd == 100 * MTU + MTU  # a quarter of 4 packets
    m.grow(w, 4 * MTU, queue=target, target=target, mtu=MTU)
    assert w.cwnd == 101 * MTU and w.ssthresh == 101 * MTU  # held, slow start over


def test_congestion_avoidance_regrows_without_a_queue_and_adds_a_packet_per_window() -> None:
    target = 256 * 1024
    w = m.Window(cwnd=40 * MTU, ssthresh=40 * MTU, partial_bytes_acked=0)
    m.grow(w, 4 * MTU, queue=0, target=target, mtu=MTU)  # quarter of the acked bytes
    assert w.cwnd == 41 * MTU and w.partial_bytes_acked == 4 * MTU
    w = m.Window(cwnd=40 * MTU, ssthresh=40 * MTU, partial_bytes_acked=38 * MTU)
    m.grow(w, 4 * MTU, queue=target / 2, target=target, mtu=MTU)  # Reno only
    assert w.cwnd == 41 * MTU and w.partial_bytes_acked == 2 * MTU


def test_loss_threshold() -> None:
    assert m.loss_threshold(100 * MTU, MTU) == 50 * MTU
    assert m.loss_threshold(5 * MTU, MTU) == 4 * MTU


def test_queue_target_per_peer() -> None:
    assert m.queue_target(browser=True, receive_buffer=8 << 20) == 32 * 1024
    assert m.queue_target(browser=False, receive_buffer=8 << 20) == 1024 * 1024  # 1/8, at the cap
    assert m.queue_target(browser=False, receive_buffer=416 * 1024) == 52 * 1024
    assert m.queue_target(browser=False, receive_buffer=100 * 1024) == 32 * 1024  # floor
    assert m.queue_target(browser=False, receive_buffer=None) is None


def test_probe_timeout_doubles_per_unanswered_probe() -> None:
    assert m.probe_timeout(None, 0) == pytest.approx(0.022)  # 2 x PROBE_MIN + SACK_DELAY
    assert m.probe_timeout(0.001, 0) == pytest.approx(0.01)  # floor
    assert m.probe_timeout(0.035, 0) == pytest.approx(0.072)
    assert m.probe_timeout(0.035, 2) == pytest.approx(0.288)


def test_peer_window() -> None:
    assert m.peer_window_allows(0, MTU, None) is True  # no SACK yet
    assert m.peer_window_allows(10_000, MTU, 20_000) is True
    assert m.peer_window_allows(19_000, MTU, 20_000) is False
    assert m.peer_window_allows(0, MTU, 500) is True  # one packet beyond a small window
    assert m.peer_window_allows(0, MTU, 0) is None  # closed: zero-window probe only

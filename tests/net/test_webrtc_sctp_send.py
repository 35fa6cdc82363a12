"""S8 of docs/webrtc-tuning.md: with a browser, new data leaves in bursts of BROWSER_BURST
packets instead of the two each of Chromium's SACKs frees, without ever stalling a small window."""

from __future__ import annotations

import pytest

from sp2p.net.webrtc_sctp_send import BROWSER_BURST, burst_waits

PACKET = 2020
BURST = BROWSER_BURST * PACKET


@pytest.mark.parametrize(
    ("flight", "cwnd", "waits"),
    [
        (30 * PACKET, 32 * PACKET, True),  # two packets free: wait for more SACKs
        (24 * PACKET + 1, 32 * PACKET, True),
        (24 * PACKET, 32 * PACKET, False),  # a whole burst fits
        (0, 32 * PACKET, False),  # nothing in flight, so no SACK would come
        (BURST - 1, BURST + 1, False),  # under a burst in flight: its SACKs may never come
        (15 * PACKET, 2 * BURST - 1, False),  # a small window (after a loss) is never held
        (15 * PACKET, 2 * BURST, True),
    ],
)
def test_new_data_waits_for_a_burst(flight: int, cwnd: int, waits: bool) -> None:
    assert burst_waits(flight, cwnd, BURST) is waits

"""M2 of docs/webrtc-tuning.md: on a path with a 1500-byte MTU (a netns whose addresses
route over a loopback set to 1500), two WebRTCPeers probe for 8 KiB and 1412-byte SCTP
packets at once; the 8 KiB probe is refused (don't-fragment), the smaller one comes back,
and the data then moves in 1384-byte chunks, every byte intact."""

from __future__ import annotations

import pytest

from sp2p.net.webrtc_sctp_mtu import ETHERNET_PACKET, data_size
from tests.net.webrtc_netns import shaped_netns, transfer_in

pytestmark = [pytest.mark.webrtc, pytest.mark.netns]


def test_a_1500_byte_path_gets_the_larger_ethernet_packets() -> None:
    with shaped_netns(mtu=1500) as ns:
        result = transfer_in(ns, 8)
    assert result["match"] and result["reply"] == "ok"
    assert result["chunk_size"] == data_size(ETHERNET_PACKET) == 1384

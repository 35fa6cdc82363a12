"""WebRTC over a lossy path: 2 % of UDP packets dropped at random (iptables in a netns).

Guards the SCTP loss-recovery patches in sp2p.net.webrtc_sctp: every byte must arrive,
intact, without the association stalling (the child process has a hard timeout).
Datagrams are dropped where they arrive, one by one: our sender hands runs of them to the
kernel as one UDP GSO send (webrtc_udp G1), which netfilter's OUTPUT hook sees as one
packet, and the namespace's device splits them first (gso_max_segs 1), as a NIC would.
"""

from __future__ import annotations

import pytest

from tests.net.webrtc_netns import ns_run, shaped_netns, transfer_in

pytestmark = [pytest.mark.webrtc, pytest.mark.netns]


def _dropped(ns: str) -> int:
    out = ns_run(ns, "iptables-legacy", "-L", "INPUT", "-v", "-x", "-n")
    rows = [line.split() for line in out.splitlines() if "DROP" in line]
    return sum(int(row[0]) for row in rows)


def test_transfer_survives_random_loss() -> None:
    with shaped_netns(loss=0.02) as ns:
        # 16 MiB drops 60-76 datagrams here (4 runs); 8 MiB dropped ~20-30 since SACKs between our
        # CLIs cover 8 packets (fewer datagrams), so "> 20" sat at the mean and failed a full run
        # with 16
        result = transfer_in(ns, 16)
        assert result["match"] and result["reply"] == "ok"
        assert _dropped(ns) > 20  # the path really was lossy

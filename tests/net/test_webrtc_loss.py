"""WebRTC over a lossy path: 2 % of UDP packets dropped at random (iptables in a netns).

Guards the SCTP loss-recovery patches in sp2p.net.webrtc_sctp: every byte must arrive,
intact, without the association stalling (the child process has a hard timeout).
Datagrams are dropped where they arrive, one by one: our sender hands runs of them to the
kernel as one UDP GSO send (webrtc_udp G1), which netfilter's OUTPUT hook sees as one
packet, and the namespace's device splits them first (gso_max_segs 1), as a NIC would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.webrtc, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]


def _ns(ns: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def lossy_netns() -> Iterator[str]:
    assert os.geteuid() == 0, "network namespaces need root (CI runs the suite as root)"
    ns = f"sp2pwl{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        _ns(ns, "ip", "link", "set", "lo", "up")
        _ns(ns, "ip", "link", "set", "lo", "gso_max_segs", "1")
        # aioice ignores 127.0.0.1, so give the namespace two ordinary addresses
        _ns(ns, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ns(ns, "ip", "addr", "add", "10.77.0.1/24", "dev", "v0")
        _ns(ns, "ip", "addr", "add", "10.77.0.2/24", "dev", "v1")
        _ns(ns, "ip", "link", "set", "v0", "up")
        _ns(ns, "ip", "link", "set", "v1", "up")
        _ns(ns, "iptables-legacy", "-A", "INPUT", "-p", "udp", "-m", "statistic",
            "--mode", "random", "--probability", "0.02", "-j", "DROP")  # fmt: skip
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _dropped(ns: str) -> int:
    out = _ns(ns, "iptables-legacy", "-L", "INPUT", "-v", "-x", "-n")
    rows = [line.split() for line in out.splitlines() if "DROP" in line]
    return sum(int(row[0]) for row in rows)


def test_transfer_survives_random_loss(lossy_netns: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", lossy_netns, sys.executable, "-m", "tests.net.webrtc_loss_child", "8"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["match"] and result["reply"] == "ok"
    assert _dropped(lossy_netns) > 20  # the path really was lossy

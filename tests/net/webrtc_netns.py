"""A network namespace with two ordinary addresses for WebRTC tests that shape the path
(root): random loss where datagrams arrive, or a smaller MTU. The child process
tests.net.webrtc_loss_child runs one transfer inside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def ns_run(ns: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True
    ).stdout


@contextmanager
def shaped_netns(*, loss: float = 0.0, mtu: int | None = None) -> Iterator[str]:
    """A namespace dropping `loss` (0-1) of arriving UDP datagrams at random, with
    at most `mtu` bytes per packet between its addresses (they route over its loopback)."""
    assert os.geteuid() == 0, "network namespaces need root (CI runs the suite as root)"
    ns = f"sp2pwl{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ns_run(ns, "ip", "link", "set", "lo", "up")
        if mtu:
            ns_run(ns, "ip", "link", "set", "lo", "mtu", str(mtu))
        # datagrams are dropped one by one: the device splits our UDP GSO sends first
        ns_run(ns, "ip", "link", "set", "lo", "gso_max_segs", "1")
        # aioice ignores 127.0.0.1, so give the namespace two ordinary addresses
        ns_run(ns, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ns_run(ns, "ip", "addr", "add", "10.77.0.1/24", "dev", "v0")
        ns_run(ns, "ip", "addr", "add", "10.77.0.2/24", "dev", "v1")
        ns_run(ns, "ip", "link", "set", "v0", "up")
        ns_run(ns, "ip", "link", "set", "v1", "up")
        if loss:
            ns_run(ns, "iptables-legacy", "-A", "INPUT", "-p", "udp", "-m", "statistic",
                   "--mode", "random", "--probability", str(loss), "-j", "DROP")  # fmt: skip
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def transfer_in(ns: str, mib: int) -> dict[str, Any]:
    """One WebRTCPeer transfer of `mib` MiB inside `ns`: the child's JSON result."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.net.webrtc_loss_child", str(mib)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result

"""sp2p's TCP send buffer rule (sp2p.net.tcp.fixed_send_buffer) inside a namespace we control.

net.ipv4.tcp_wmem is per network namespace, net.core.wmem_max is global: the rule fixes
SO_SNDBUF only where the global cap doubled beats the namespace's autotuning ceiling.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from sp2p.net.tcp import TcpChannel, fixed_send_buffer
from tests.netlab.netns import BASE_PREFIX, delete_netns, in_netns, ns_sh, sh

pytestmark = pytest.mark.netns


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"{BASE_PREFIX}{os.getpid()}x0-sndbuf"
    sh(["ip", "netns", "add", name])
    try:
        ns_sh(name, ["ip", "link", "set", "lo", "up"])
        yield name
    finally:
        delete_netns([name])


def _wmem_max() -> int:
    with open("/proc/sys/net/core/wmem_max") as f:
        return int(f.read())


def _channel_sndbuf() -> int:
    lst = socket.create_server(("127.0.0.1", 0))
    dialer = socket.create_connection(lst.getsockname())
    acceptor, _ = lst.accept()
    channel = TcpChannel(dialer, dialed=True)
    try:
        return channel.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        channel.close()
        acceptor.close()
        lst.close()


def test_low_autotuning_ceiling_gets_a_fixed_buffer(ns: str) -> None:
    wmem_max = _wmem_max()
    ns_sh(ns, ["sysctl", "-qw", f"net.ipv4.tcp_wmem=4096 16384 {wmem_max}"])
    assert in_netns(ns, fixed_send_buffer) == wmem_max
    assert in_netns(ns, _channel_sndbuf) == 2 * wmem_max  # the kernel doubles the request


def test_high_autotuning_ceiling_is_left_alone(ns: str) -> None:
    ceiling = 4 * _wmem_max()
    ns_sh(ns, ["sysctl", "-qw", f"net.ipv4.tcp_wmem=4096 16384 {ceiling}"])
    assert in_netns(ns, fixed_send_buffer) is None
    assert in_netns(ns, _channel_sndbuf) < 2 * _wmem_max()  # autotuned, still small at the start

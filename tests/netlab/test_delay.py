"""The user-space delay line: ~70 ms RTT, and it carries ICMP, TCP and UDP intact."""

from __future__ import annotations

import os
import re
import socket

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def avg_rtt_ms(ping_output: str) -> float:
    m = re.search(r"= [\d.]+/([\d.]+)/", ping_output)
    assert m, ping_output
    return float(m.group(1))


def tcp_echo_server(srv: socket.socket) -> None:
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def tcp_round_trip(addr: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def udp_echo_server(sock: socket.socket, count: int) -> None:
    sock.settimeout(10)
    for _ in range(count):
        data, addr = sock.recvfrom(2048)
        sock.sendto(data, addr)


def udp_round_trip(addr: tuple[str, int], datagrams: list[bytes]) -> set[bytes]:
    got = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        for i in range(0, len(datagrams), 10):
            for d in datagrams[i : i + 10]:
                s.sendto(d, addr)
            for _ in datagrams[i : i + 10]:
                got.add(s.recvfrom(2048)[0])
    return got


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "per-packet"])
def test_delay_line_rtt_and_traffic(netlab, offload):
    lab = netlab(same_lan=True, delay_ms=35, delay_offload=offload)
    h2 = lab.ip("h2")
    lab.check_output("h1", ["ping", "-c1", "-W3", h2])  # warm-up
    rtt = avg_rtt_ms(lab.check_output("h1", ["ping", "-c5", "-i0.2", "-W3", h2]))
    assert rtt > 60
    # the undelayed neighbour is fast: the delay belongs to h1's line only
    assert avg_rtt_ms(lab.check_output("h2", ["ping", "-c3", "-i0.2", "-W3", lab.ip("pub")])) < 20

    srv = lab.call("h2", socket.create_server, (h2, 0))
    with srv:
        lab.submit("h2", tcp_echo_server, srv)
        payload = os.urandom(4 * 1024 * 1024)
        assert lab.call("h1", tcp_round_trip, srv.getsockname(), payload) == payload

    usock = lab.call("h2", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with usock:
        usock.bind((h2, 0))
        datagrams = [i.to_bytes(2, "big") + os.urandom(1200) for i in range(50)]
        lab.submit("h2", udp_echo_server, usock, len(datagrams))
        assert lab.call("h1", udp_round_trip, usock.getsockname(), datagrams) == set(datagrams)


def test_delay_line_with_loss_drops_some(netlab):
    lab = netlab(same_lan=True, delay_ms=5, loss_pct=30)
    out = lab.check_output("h1", ["ping", "-c40", "-i0.02", "-W1", lab.ip("h2")], check=False)
    m = re.search(r"(\d+) received", out)
    assert m, out
    assert 0 < int(m.group(1)) < 40  # ~49 % of round trips survive two 30 % drops

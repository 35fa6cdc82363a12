"""NAT flavours behave as their names say: cone NATs can be hole-punched, symmetric ones not."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.netlab import PUB_IP, PUB_IP2, Nat
from tests.netlab.services import REFLECTOR_PORTS

pytestmark = [pytest.mark.netns, pytest.mark.slow]

RDV = (PUB_IP, 7000)


def mapped_ports(servers: list[tuple[str, int]]) -> list[int]:
    """Public ports one UDP socket gets towards several reflector addresses."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        s.settimeout(3)
        ports = []
        for server in servers:
            s.sendto(b"?", server)
            ports.append(int(s.recvfrom(100)[0].decode().rsplit(":", 1)[1]))
        return ports


def rendezvous(sock: socket.socket) -> list[tuple[str, int]]:
    """Pair the first two registrations and tell each the other's public endpoint."""
    sock.settimeout(10)
    peers: list[tuple[str, int]] = []
    while len(peers) < 2:
        _, addr = sock.recvfrom(100)
        if addr not in peers:
            peers.append(addr)
    for me, other in ((peers[0], peers[1]), (peers[1], peers[0])):
        sock.sendto(f"{other[0]}:{other[1]}".encode(), me)
    return peers


def punch(name: str, duration: float = 1.5) -> int:
    """Register at the rendezvous, then fire at the peer's public endpoint; count its packets."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        s.settimeout(0.02)
        deadline = time.monotonic() + 10
        while True:  # (re-)register until the rendezvous answers
            s.sendto(b"reg", RDV)
            try:
                data, addr = s.recvfrom(100)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            if addr == RDV:
                break
        host, port = data.decode().rsplit(":", 1)
        peer = (host, int(port))
        got = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            s.sendto(name.encode(), peer)
            with contextlib.suppress(TimeoutError):
                got += s.recvfrom(100)[1] == peer
        return got


def punch_both(lab) -> tuple[int, int]:
    rdv = lab.call("pub", socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
    with rdv:
        rdv.bind(RDV)
        paired = lab.submit("pub", rendezvous, rdv)
        a = lab.submit("h1", punch, "A")
        b = lab.submit("h2", punch, "B")
        peers = paired.result(timeout=15)
        assert {p[0] for p in peers} == {lab.ip("r1"), lab.ip("r2")}
        return a.result(timeout=15), b.result(timeout=15)


REFLECTORS = [(PUB_IP, REFLECTOR_PORTS[0]), (PUB_IP, REFLECTOR_PORTS[1]), (PUB_IP2, REFLECTOR_PORTS[0])]


def test_port_restricted_cone_keeps_mapping_and_punches(netlab):
    lab = netlab(Nat.PORT_RESTRICTED, Nat.PORT_RESTRICTED)
    lab.start_stun_reflector()
    ports = lab.call("h1", mapped_ports, REFLECTORS)
    assert len(set(ports)) == 1  # endpoint-independent mapping
    got_a, got_b = punch_both(lab)
    assert got_a > 0
    assert got_b > 0


def test_symmetric_nat_changes_mapping_and_defeats_punching(netlab):
    lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC)
    lab.start_stun_reflector()
    ports = lab.call("h1", mapped_ports, REFLECTORS)
    assert len(set(ports)) == len(REFLECTORS)  # a new port per destination
    assert punch_both(lab) == (0, 0)


def test_set_nat_switches_flavour_at_runtime(netlab):
    lab = netlab(Nat.SYMMETRIC, Nat.PORT_RESTRICTED)
    lab.start_stun_reflector()
    assert len(set(lab.call("h1", mapped_ports, REFLECTORS))) > 1
    lab.set_nat("r1", Nat.PORT_RESTRICTED)
    assert len(set(lab.call("h1", mapped_ports, REFLECTORS))) == 1

"""coturn in pub answers STUN through the NATs and allocates relays with REST credentials."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.netlab import PUB_IP, Nat
from tests.netlab.services import stun_mapped_address
from tests.support.coturn import rest_credentials

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def mapped(server: tuple[str, int]) -> tuple[str, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return stun_mapped_address(s, server)


def test_coturn_stun_and_turn_allocation_behind_symmetric_nats(netlab):
    lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC)
    turn = lab.start_coturn()
    assert turn.stun_url == f"stun:{PUB_IP}:3478"

    ip, _ = lab.call("h1", mapped, (turn.ip, turn.port))
    assert ip == lab.ip("r1")  # STUN sees the NAT's public side

    user, password = turn.credentials()
    bad_user, bad_password = rest_credentials("not-the-secret", ttl=1800)  # other name
    uclient = ["turnutils_uclient", "-y", "-n", "1", "-p", str(turn.port)]
    # both runs take ~6 s each: in parallel, from the two LANs
    good = lab.run("h1", [*uclient, "-u", user, "-w", password, turn.ip], name="uclient-good")
    bad = lab.run("h2", [*uclient, "-u", bad_user, "-w", bad_password, turn.ip], name="uclient-bad")
    try:
        assert good.wait(timeout=60) == 0, lab.output_of(good)[-2000:]
        assert bad.wait(timeout=60) != 0, lab.output_of(bad)[-2000:]
    except subprocess.TimeoutExpired:
        pytest.fail("turnutils_uclient hung")
    assert "Cannot complete Allocation" in lab.output_of(bad)
    log = lab.output_of(turn.proc)
    assert f"user <{user}>: incoming packet ALLOCATE processed, success" in log
    assert f"user <{bad_user}>: incoming packet ALLOCATE processed, success" not in log

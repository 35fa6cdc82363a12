"""The lab itself: address plan, NAT reachability, same-LAN, and that cleanup leaves nothing."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.netlab import PUB_IP, Lab, Nat, cleanup_stale
from tests.netlab.netns import list_netns
from tests.netlab.services import REFLECTOR_PORTS

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def ask_reflector(server: tuple[str, int]) -> str:
    """The `ip:port` the harness's reflector saw for a fresh UDP socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(b"?", server)
        return s.recvfrom(100)[0].decode()


def test_nat_hides_lans_from_each_other(netlab):
    lab = netlab(Nat.PORT_RESTRICTED, Nat.SYMMETRIC)
    lab.start_stun_reflector()
    for host, router in (("h1", "r1"), ("h2", "r2")):
        seen_ip = lab.call(host, ask_reflector, (PUB_IP, REFLECTOR_PORTS[0])).split(":")[0]
        assert seen_ip == lab.ip(router)  # masqueraded to the router's WAN address
    with pytest.raises(OSError):  # r1 has no route to the other private LAN
        lab.call("h1", socket.create_connection, (lab.ip("h2"), 9), 2)


def test_same_lan_hosts_talk_directly(netlab):
    lab = netlab(same_lan=True)
    assert "r2" not in lab.hosts
    srv = lab.call("h2", socket.create_server, (lab.ip("h2"), 0))
    with srv:
        accepted = lab.submit("h2", srv.accept)
        client = lab.call("h1", socket.create_connection, srv.getsockname(), 3)
        conn, peer = accepted.result(timeout=5)
        conn.close()
        client.close()
    assert peer[0] == lab.ip("h1")  # no NAT between them


def test_routed_router_exposes_its_lan(netlab):
    lab = netlab(Nat.NONE, Nat.PORT_RESTRICTED)
    srv = lab.call("h1", socket.create_server, ("0.0.0.0", 0))
    with srv:
        accepted = lab.submit("h1", srv.accept)
        lab.call("pub", socket.create_connection, (lab.ip("h1"), srv.getsockname()[1]), 3).close()
        conn, peer = accepted.result(timeout=5)
        conn.close()
    assert peer[0] == PUB_IP


def test_close_kills_everything_and_deletes_namespaces(netlab):
    lab = netlab()
    tracked = lab.run("h1", ["sleep", "300"])
    # a grandchild the lab never saw: found through `ip netns pids`
    out = lab.check_output("h2", ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
    orphan = int(out.strip())
    namespaces = [h.ns for h in lab.hosts.values()]
    assert set(namespaces) <= set(list_netns())
    lab.close()
    lab.close()  # idempotent
    assert tracked.poll() is not None
    assert not set(namespaces) & set(list_netns())
    assert not os.path.exists(f"/proc/{orphan}") or _zombie(orphan)


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_stale_namespaces_of_dead_runs_are_removed(netlab):
    netlab()  # needs root like the rest; also proves a lab can coexist with the check
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"snl{dead.pid}x1-pub"
    alive = f"snl{os.getpid()}x999999-pub"
    for ns in (stale, alive):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "300"])
    try:
        removed = cleanup_stale()
        assert stale in removed
        assert stale not in list_netns()
        assert alive in list_netns()  # a live run's namespace is left alone
        assert sleeper.wait(timeout=5) != 0  # killed, not finished
    finally:
        sleeper.kill()
        sleeper.wait()
        subprocess.run(["ip", "netns", "del", alive], check=False)
        subprocess.run(["ip", "netns", "del", stale], check=False, capture_output=True)


def test_lab_outside_pytest_context_manager():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Lab.create(same_lan=True) as lab:
        ns = lab.ns("h1")
        assert lab.check_output("h1", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).count(
            lab.ip("h1")
        )
    assert ns not in list_netns()


def test_capture_in_pub_sees_lan_traffic(netlab):
    lab = netlab()
    lab.start_stun_reflector()
    cap = lab.capture("pub", "br0", "udp")
    marker = b"netlab-capture-marker-" + os.urandom(4).hex().encode()

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(marker, (PUB_IP, REFLECTOR_PORTS[0]))
            s.recvfrom(100)

    lab.call("h1", send)
    pcap = cap.stop()
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # a pcap file
    assert marker in pcap

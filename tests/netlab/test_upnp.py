"""sp2p.net.upnp against real miniupnpd on a NAT router (lab r1), reached from pub."""

from __future__ import annotations

import socket
import time

import miniupnpc
import pytest

from sp2p.net.ssdp import search_messages
from sp2p.net.upnp import ExternalKind, UpnpError, UpnpMapping, classify_external
from tests.netlab.lab import IPT
from tests.netlab.netns import ns_sh

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def listen(lab, host: str, port: int = 0) -> socket.socket:
    return lab.call(host, socket.create_server, ("0.0.0.0", port))


def connect_through(lab, mapping: UpnpMapping, srv: socket.socket) -> tuple[str, int]:
    """Connect from pub to the mapping's external address; return the peer the LAN host saw."""
    accepted = lab.submit(mapping_host(lab, mapping), srv.accept)
    lab.call("pub", socket.create_connection, (mapping.external_ip, mapping.external_port), 3).close()
    conn, peer = accepted.result(timeout=5)
    conn.close()
    return peer


def mapping_host(lab, mapping: UpnpMapping) -> str:
    return next(h.name for h in lab.hosts.values() if h.ip == mapping.internal_ip)


def gateway_entry(router_lan_ip: str, port: int) -> object:
    """What the IGD itself reports for external TCP `port` (None if unmapped)."""
    u = miniupnpc.UPnP()
    u.selectigd(f"http://{router_lan_ip}:5000/rootDesc.xml")  # no SSDP wait
    return u.getspecificportmapping(port, "TCP")


def entry(lab, port: int) -> object:
    return lab.call("h1", gateway_entry, lab.hosts["r1"].lan_ip, port)


def test_mapping_forwards_from_pub_and_is_removed_on_close(netlab):
    lab = netlab()
    lab.start_miniupnpd("r1")
    srv = listen(lab, "h1")
    port = srv.getsockname()[1]
    with srv:
        m = lab.call("h1", lambda: UpnpMapping.create(port, timeout=5))
        assert m is not None
        assert (m.external_ip, m.external_port) == (lab.ip("r1"), port)
        assert m.external_address == f"{lab.ip('r1')}:{port}"
        assert m.internal_ip == lab.ip("h1")  # the address on the interface towards the IGD
        assert m.external_kind is ExternalKind.PRIVATE  # 10.201.0.1: flagged, still usable
        found = entry(lab, port)
        assert found is not None and found[0] == lab.ip("h1") and found[4] > 3000

        assert connect_through(lab, m, srv)[0] == lab.ip("pub")

        lab.call("h1", m.close)
        lab.call("h1", m.close)  # idempotent
        assert m.closed
        assert entry(lab, port) is None
        with pytest.raises(OSError):  # the router drops it again
            lab.call("pub", socket.create_connection, (m.external_ip, port), 1.5)


def test_a_lost_search_is_sent_again(netlab):
    """SSDP is multicast UDP: with the first search burst lost on its way (the router's
    iptables drops exactly its size; a DROP in the sender's OUTPUT would fail its sendto
    instead), the gateway is still found by a later one."""
    lab = netlab()
    lab.start_miniupnpd("r1")
    burst = search_messages(2.0)
    quota = sum(len(msg) + 28 for msg in burst)  # each packet with its IPv4 and UDP headers
    rule = ["INPUT", "-p", "udp", "--dport", "1900", "-m", "quota", "--quota", str(quota), "-j", "DROP"]
    ns_sh(lab.ns("r1"), [IPT, "-I", *rule])
    srv = listen(lab, "h1")
    with srv:
        m = lab.call("h1", UpnpMapping.create, srv.getsockname()[1], discover_timeout=2.0)
        listing = ns_sh(lab.ns("r1"), [IPT, "-L", "INPUT", "-v", "-x", "-n"])
        try:
            assert m is not None, listing
            dropped = next(line.split()[0] for line in listing.splitlines() if "quota" in line)
            assert int(dropped) == len(burst)  # the whole first burst was lost
        finally:
            if m is not None:
                lab.call("h1", m.close)


def test_no_gateway_gives_none_within_budget(netlab):
    lab = netlab()  # r2 runs no miniupnpd
    started = time.monotonic()
    assert lab.call("h2", lambda: UpnpMapping.create(4444, discover_timeout=1.0)) is None
    assert time.monotonic() - started < 5


#: a lease short enough to wait out. miniupnpd stamps leases in whole seconds, so one lives
#: LEASE - 1 to LEASE s, and the renewal comes LEASE / 2 s after the last one ended: a renewer
#: thread late by a second under load lost a 4 s lease (1-2 s to spare); 6 s leaves 2-3
LEASE = 6


def test_lease_is_renewed_while_open(netlab):
    lab = netlab()
    lab.start_miniupnpd("r1")
    renewed_srv, plain_srv = listen(lab, "h1"), listen(lab, "h1")
    with renewed_srv, plain_srv:
        renewed = lab.call("h1", UpnpMapping.create, renewed_srv.getsockname()[1], lease=LEASE)
        plain = lab.call(
            "h1", UpnpMapping.create, plain_srv.getsockname()[1], lease=LEASE, renew=False
        )
        assert renewed is not None
        assert plain is not None
        try:
            # past the lease, and until miniupnpd (which expires leases on its own) dropped
            # the plain mapping: the other, made before it, would be gone too unless renewed
            lease_over, deadline = time.monotonic() + LEASE, time.monotonic() + LEASE + 11
            while time.monotonic() < deadline and (
                time.monotonic() < lease_over or entry(lab, plain.external_port) is not None
            ):
                time.sleep(0.2)
            assert entry(lab, plain.external_port) is None
            assert entry(lab, renewed.external_port) is not None
            connect_through(lab, renewed, renewed_srv)
        finally:
            lab.call("h1", renewed.close)
            lab.call("h1", plain.close)


def test_taken_external_port_falls_back_to_another(netlab):
    lab = netlab()
    lab.add_host("h3", "r1")
    lab.start_miniupnpd("r1")
    other_srv = listen(lab, "h3")
    port = other_srv.getsockname()[1]
    srv = listen(lab, "h1", port)  # same port number on another LAN host
    with other_srv, srv:
        first = lab.call("h3", UpnpMapping.create, port)
        assert first is not None and first.external_port == port
        second = lab.call("h1", UpnpMapping.create, port)
        try:
            assert second is not None
            assert second.external_port != port
            assert second.internal_address == f"{lab.ip('h1')}:{port}"
            assert connect_through(lab, second, srv)[0] == lab.ip("pub")
        finally:
            lab.call("h1", second.close)
            lab.call("h3", first.close)


@pytest.mark.parametrize(
    ("ip", "kind"),
    [("203.0.113.9", ExternalKind.PRIVATE), ("100.72.1.1", ExternalKind.CGNAT),
     ("192.168.1.1", ExternalKind.PRIVATE), ("8.8.8.8", ExternalKind.PUBLIC)],
)  # fmt: skip
def test_classify_external(ip, kind):
    assert classify_external(ip) is kind


def test_stalled_gateway_raises_within_budget(netlab):
    lab = netlab()
    lab.start_miniupnpd("r1")
    # SSDP is answered, but the IGD's HTTP port goes silent
    lab.check_output(
        "r1", ["iptables-legacy", "-I", "INPUT", "-p", "tcp", "--dport", "5000", "-j", "DROP"]
    )
    started = time.monotonic()
    with pytest.raises(UpnpError, match="within 1.5 s"):
        lab.call("h1", lambda: UpnpMapping.create(4555, timeout=1.5))
    assert time.monotonic() - started < 3

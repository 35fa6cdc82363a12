"""Every channel says what carries it as a TransportKind, and parallel TCP reaches the TCP
primary through `parallel_tcp()` whatever wraps it, never by unwrapping attributes."""

from __future__ import annotations

import socket

from sp2p.net.channel import PrefixedChannel, TransportKind
from sp2p.net.tcp import TcpChannel


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_wrapped_tcp_channel_offers_itself_for_parallel_tcp_and_owns_the_listener() -> None:
    a, b = socket.socketpair()
    ch = TcpChannel(a, dialed=False)
    wrapped = PrefixedChannel(ch, b"mac")
    try:
        assert wrapped.transport is TransportKind.TCP
        assert str(wrapped.transport) == "TCP"  # the summary's word, never compared by code
        host = wrapped.parallel_tcp()
        assert host is ch and not host.dialed
        first, second = _listener(), _listener()
        host.adopt_listener(first)
        host.adopt_listener(second)  # a second hand-over closes the first
        assert first.fileno() == -1 and ch.spare_listener is second
        assert wrapped.recv(1) == b"mac"
    finally:
        wrapped.close()
        b.close()
    assert ch.spare_listener is None and second.fileno() == -1  # closed with the channel


def test_the_dialing_side_knows_its_peer_address() -> None:
    server = _listener()
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    ch = TcpChannel(client, dialed=True)
    try:
        assert ch.parallel_tcp().peer_address() == server.getsockname()
    finally:
        ch.close()
        peer.close()
        server.close()


def test_a_tcp_channel_reports_the_kernels_unsent_backlog() -> None:
    """What the adaptive compression reads as "the link is behind" (sp2p/proto/adapt.py): bytes
    the kernel took but has not sent, and the whole unacknowledged queue for parallel TCP's drain."""
    server = _listener()
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    ch = TcpChannel(client, dialed=True)
    wrapped = PrefixedChannel(ch, b"")
    try:
        assert ch.buffered_amount == 0 and ch.unacknowledged == 0
        client.setblocking(False)
        sent = 0
        try:
            while sent < 64 << 20:  # until the peer's receive window and our send buffer are full
                sent += client.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        assert 0 < wrapped.buffered_amount <= ch.unacknowledged <= sent
        peer.setblocking(True)
        got = 0
        while got < sent:  # the peer reads it all: nothing left queued
            got += len(peer.recv(1 << 20))
        assert ch.buffered_amount == 0
    finally:
        ch.close()
        peer.close()
        server.close()


def test_a_tcp_channel_reports_its_round_trip_and_a_peer_on_this_host() -> None:
    """Where adaptive compression starts (sp2p/proto/adapt.py): at the most effort on a far link,
    stored frames only for a receiver on this host. The kernel's RTT on loopback is well under
    a millisecond; a socket pair is no TCP and says so."""
    server = _listener()
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    ch = TcpChannel(client, dialed=True)
    wrapped = PrefixedChannel(ch, b"")
    a, b = socket.socketpair()
    unix = TcpChannel(a, dialed=False)
    try:
        client.sendall(b"x" * 1000)
        peer.recv(1000)
        rtt = wrapped.round_trip
        assert rtt is not None and 0 < rtt < 0.01
        assert wrapped.same_host
        assert unix.round_trip is None and not unix.same_host
    finally:
        ch.close()
        unix.close()
        b.close()
        peer.close()
        server.close()

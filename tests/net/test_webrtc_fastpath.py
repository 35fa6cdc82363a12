"""The per-packet fast paths are really in place between two WebRTCPeers (a test that
fails when an aiortc, aioice or asyncio change makes them fall back silently):
U1 batched ICE socket reads and G1 batched (UDP GSO) sends (sp2p/net/webrtc_udp.py), D1 the DTLS record layer
(sp2p/net/webrtc_dtls.py), W1 the receive window fitted to the socket buffer and M1
the larger packets between two of our peers once a probe came back."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from sp2p.net.webrtc_ice import _ice_connection, enlarge_socket_buffers
from sp2p.net.webrtc_sctp_math import receive_window
from sp2p.net.webrtc_sctp_mtu import JUMBO_DATA
from sp2p.net.webrtc_udp import outbox
from tests.net.webrtc_pair import open_pair, read_exactly

pytestmark = pytest.mark.webrtc


def test_fast_paths_engage_and_carry_data_intact() -> None:
    data = os.urandom(6 * 1024 * 1024)
    with open_pair() as (snd, rcv, _):
        sender = threading.Thread(target=snd.send, args=(data,))  # more than the window holds
        sender.start()
        got = read_exactly(rcv, len(data))
        sender.join(30)
        rcv.send(b"done")
        assert snd.recv(10) == b"done"
        for stream in (snd, rcv):
            sctp = stream._sctp
            sockets = list(_ice_connection(sctp)._protocols)
            assert sockets and all(p.transport._sp2p_batched for p in sockets)  # U1
            dtls = sctp.transport
            assert dtls._sp2p_reading and dtls._sp2p_layer.next_seq > 0  # D1 both ways
            box = outbox(dtls.transport)
            assert box is not None and box.transport._sp2p_gso is not False  # G1
            assert sctp._sp2p_probe in ("done", "pending")  # M1: both announced it
            granted = enlarge_socket_buffers(sctp)
            assert sctp._sp2p_window == receive_window(granted) <= 8 * 1024 * 1024  # W1
        assert snd._sctp._sp2p_chunk_size == JUMBO_DATA  # M1: loopback carries the probe
        box = outbox(snd._sctp.transport.transport)
        assert box is not None and box.gso_datagrams > 2 * box.gso_sends > 0  # G1: runs, not singles
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

"""D1: the DTLS record layer that replaces pyOpenSSL after the handshake
(sp2p/net/webrtc_records.py, installed by sp2p/net/webrtc_dtls.py)."""

from __future__ import annotations

import asyncio
import os

import pytest

from sp2p.net import webrtc_sctp
from sp2p.net.webrtc_records import HEADER_LEN, OVERHEAD, RecordLayer, ReplayWindow, prf_sha256, records

pytestmark = pytest.mark.webrtc


def test_prf_sha256_known_answer() -> None:
    # the widely used TLS 1.2 PRF (SHA-256) test vector
    out = prf_sha256(bytes.fromhex("9bbe436ba940f017b17652849a71db35"), b"test label",
                     bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"), 16)
    assert out.hex() == "e3f229ba727be17b8d122620557cd453"


def _pair() -> tuple[RecordLayer, RecordLayer]:
    master, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    return RecordLayer.for_role("client", master, cr, sr), RecordLayer.for_role("server", master, cr, sr)


def test_seal_open_round_trip_and_framing() -> None:
    client, server = _pair()
    client.start_sending(5)
    wire = client.seal(23, b"hello") + client.seal(23, b"world!")
    found = list(records(wire))
    assert [(k, s & 0xFFFF_FFFF_FFFF, s >> 48) for k, s, _ in found] == [(23, 5, 1), (23, 6, 1)]
    assert len(found[0][2]) == HEADER_LEN + OVERHEAD + 5
    assert [server.open(k, s, r) for k, s, r in found] == [b"hello", b"world!"]
    # the client can read back its own records (how OpenSSL's are re-sealed)
    assert client.open_own(found[1][2]) == b"world!"


def test_forged_truncated_and_replayed_records_are_refused() -> None:
    client, server = _pair()
    client.start_sending(1)
    record = client.seal(23, b"x" * 100)
    kind, seq, view = next(records(record))
    forged = bytearray(record)
    forged[-1] ^= 1
    assert server.open(kind, seq, next(records(bytes(forged)))[2]) is None
    assert list(records(record[:-1])) == []  # truncated: no record at all
    assert server.open(kind, seq, view) == b"x" * 100
    assert server.open(kind, seq, view) is None  # replayed


def test_replay_window() -> None:
    window = ReplayWindow(100)
    assert not window.fresh(99)  # older than the first record seen here
    for seq in (100, 103, 101):
        assert window.fresh(seq)
        window.accept(seq)
    assert not window.fresh(101) and window.fresh(102) and window.fresh(5000)
    window.accept(5000)
    assert not window.fresh(102)  # fell out of the window


def _connect_raw(disable_b: bool) -> tuple[list[bytes], list[bytes], list[object]]:
    """Two raw aiortc peers in one loop; `disable_b` keeps OpenSSL's record layer on b."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    assert webrtc_sctp.apply()
    to_b: list[bytes] = []
    to_a: list[bytes] = []
    transports: list[object] = []

    async def run() -> None:
        a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        channel = a.createDataChannel("sp2p")
        opened, done = asyncio.Event(), asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", lambda m: (to_a.append(m), done.set() if len(to_a) == 20 else None))

        @b.on("datachannel")
        def on_channel(incoming: object) -> None:
            @incoming.on("message")  # type: ignore[attr-defined]
            def on_message(message: bytes) -> None:
                to_b.append(message)
                incoming.send(message[::-1])  # type: ignore[attr-defined]

        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        if disable_b:
            b.sctp.transport._sp2p_layer = False  # type: ignore[union-attr]
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(opened.wait(), 30)
        for i in range(20):
            channel.send(bytes([i]) * 70000)
        await asyncio.wait_for(done.wait(), 30)
        transports.extend([a.sctp.transport, b.sctp.transport])  # type: ignore[union-attr]
        await a.close()
        await b.close()

    asyncio.run(run())
    return to_b, to_a, transports


@pytest.mark.parametrize("stock_peer", [False, True], ids=["both-ours", "openssl-peer"])
def test_record_layer_takes_over_and_interoperates(stock_peer: bool) -> None:
    """Our records are read by OpenSSL's record layer and the other way round; the test
    fails when the record layer no longer engages (e.g. after an aiortc or OpenSSL change)."""
    to_b, to_a, (dtls_a, dtls_b) = _connect_raw(disable_b=stock_peer)
    assert to_b == [bytes([i]) * 70000 for i in range(20)]
    assert to_a == [(bytes([i]) * 70000)[::-1] for i in range(20)]
    layer = dtls_a.__dict__["_sp2p_layer"]
    assert layer and layer.next_seq > 50, "our side did not take over sending"
    assert dtls_a.__dict__["_sp2p_reading"], "our side did not take over receiving"
    assert bool(dtls_b.__dict__["_sp2p_layer"]) is not stock_peer

"""WebRTC through a real coturn on loopback: the "(relay)" label and failed allocations."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from sp2p.errors import ConnectError
from sp2p.net.webrtc import WebRTCPeer
from tests.net.webrtc_pair import OPEN_TIMEOUT, Relay
from tests.support.coturn import Coturn, rest_credentials

pytestmark = pytest.mark.webrtc

SECRET = "webrtc-test-secret"


@pytest.fixture(scope="module")
def turn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert shutil.which("turnserver"), "coturn missing: it is listed in .ci/apt-packages"
    server = Coturn(tmp_path_factory.mktemp("turn"), "--allow-loopback-peers", secret=SECRET)
    try:
        yield server.url
    finally:
        server.stop()


def test_relayed_connection_is_labelled(turn_url: str) -> None:
    username, credential = rest_credentials(SECRET)
    servers = [{"urls": [turn_url], "username": username, "credential": credential}]
    relay = Relay()
    sender = WebRTCPeer(
        offerer=True, send_signal=relay.send_from("sender"), ice_servers=servers, relay_only=True
    )
    receiver = WebRTCPeer(offerer=False, send_signal=relay.send_from("receiver"), ice_servers=servers)
    relay.peers.update(sender=sender, receiver=receiver)
    try:
        receiver.start()
        sender.start()
        a, b = sender.wait_open(OPEN_TIMEOUT), receiver.wait_open(OPEN_TIMEOUT)
        (offer,) = relay.sent("sender", "offer")
        assert " typ relay " in offer["sdp"] and " typ host " not in offer["sdp"]
        assert a.transport == "WebRTC (relay)"
        assert b.transport == "WebRTC (relay)"  # the peer's end of the pair is relayed too
        data = os.urandom(600_000)
        a.send(data)
        got = bytearray()
        while len(got) < len(data):
            got += b.recv(10)
        assert bytes(got) == data
    finally:
        sender.close()
        receiver.close()


def test_failed_turn_allocation_fails_fast(turn_url: str) -> None:
    username, credential = rest_credentials("wrong")
    servers = [{"urls": [turn_url], "username": username, "credential": credential}]
    sent: list[str] = []
    peer = WebRTCPeer(
        offerer=True, send_signal=lambda kind, payload: sent.append(kind), ice_servers=servers,
        relay_only=True,
    )  # fmt: skip
    try:
        peer.start()
        with pytest.raises(ConnectError, match="TURN allocation failed"):
            peer.wait_open(OPEN_TIMEOUT)
        assert sent == []  # no useless offer
    finally:
        peer.close()

"""WebRTC through a real coturn on loopback: the "(relay)" label and failed allocations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp2p.errors import ConnectError
from sp2p.net.webrtc import WebRTCPeer
from tests.net.webrtc_pair import OPEN_TIMEOUT, Relay

pytestmark = pytest.mark.webrtc

SECRET = "webrtc-test-secret"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stun_ready(port: int, timeout: float = 10.0) -> None:
    tid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(request, ("127.0.0.1", port))
            try:
                if s.recvfrom(2048)[0][8:20] == tid:
                    return
            except OSError:
                pass
    raise RuntimeError("turnserver not ready")


@pytest.fixture(scope="module")
def turn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("turnserver")
    assert binary, "coturn missing: it is listed in .ci/apt-packages"
    port = _free_udp_port()
    low = random.randrange(50000, 60000, 100)
    workdir: Path = tmp_path_factory.mktemp("turn")
    proc = subprocess.Popen(
        [binary, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
         f"--min-port={low}", f"--max-port={low + 60}", "--realm=sp2p", "--use-auth-secret",
         f"--static-auth-secret={SECRET}", "--fingerprint", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", "--no-multicast-peers", f"--userdb={workdir / 'turndb'}",
         "--log-file=stdout", "--simple-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _stun_ready(port)
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        proc.terminate()
        proc.wait(10)


def _credentials(secret: str = SECRET) -> tuple[str, str]:
    username = str(int(time.time()) + 300)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def test_relayed_connection_is_labelled(turn_url: str) -> None:
    username, credential = _credentials()
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
    username, credential = _credentials(secret="wrong")
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

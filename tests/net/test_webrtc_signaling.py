"""WebRTCPeer signaling: trickled and early candidates, early offers, failures, lazy import."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from sp2p.errors import ConnectError
from sp2p.net.webrtc import WebRTCPeer
from sp2p.net.webrtc_ice import parse_candidate
from tests.net.webrtc_pair import OPEN_TIMEOUT, Message, Relay, make_pair, open_pair

pytestmark = pytest.mark.webrtc


def _trickle_like_pion(kind: str, payload: dict[str, Any]) -> list[Message]:
    """Move the candidates out of the SDP into `candidate` messages sent *before* it,
    as Go/browser peers may deliver them, in the forms they use, plus noise."""
    if kind not in ("offer", "answer"):
        return [(kind, payload)]
    lines = payload["sdp"].splitlines()
    mid = next(line[len("a=mid:") :] for line in lines if line.startswith("a=mid:"))
    candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
    assert candidates, "aiortc puts its gathered candidates in the SDP"
    kept = [ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))]
    messages: list[Message] = [
        ("candidate", {"candidate": "candidate:garbage", "sdpMid": mid, "sdpMLineIndex": 0}),
        ("candidate", {"candidate": 42, "sdpMid": mid, "sdpMLineIndex": 0}),
    ]
    for i, cand in enumerate(candidates):
        if i % 2:
            messages.append(("candidate", {"candidate": cand, "sdpMid": mid, "sdpMLineIndex": 0}))
        else:  # bare form, index only
            bare = cand[len("candidate:") :]
            messages.append(("candidate", {"candidate": bare, "sdpMLineIndex": 0}))
    messages.append((kind, {"sdp": "\r\n".join(kept) + "\r\n", "type": kind}))
    messages.append(("candidate", {"candidate": "", "sdpMid": mid, "sdpMLineIndex": 0}))
    return messages


def test_trickled_candidates_arriving_before_the_description() -> None:
    with open_pair(_trickle_like_pion) as (snd, rcv, _):
        snd.send(b"ping")
        assert rcv.recv(10) == b"ping"
        rcv.send(b"pong")
        assert snd.recv(10) == b"pong"


def test_offer_delivered_before_the_answerer_starts() -> None:
    relay = Relay()
    sender, receiver = make_pair(relay)
    try:
        sender.start()
        deadline = time.monotonic() + OPEN_TIMEOUT
        while not relay.sent("sender", "offer") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.sent("sender", "offer")
        time.sleep(0.2)  # the offer now sits in the not-yet-started answerer
        receiver.start()
        a, b = sender.wait_open(OPEN_TIMEOUT), receiver.wait_open(OPEN_TIMEOUT)
        a.send(b"late start")
        assert b.recv(10) == b"late start"
    finally:
        sender.close()
        receiver.close()


def test_status_callback_reports_progress() -> None:
    seen: list[str] = []
    done = threading.Event()

    def status(text: str) -> None:
        seen.append(text)
        if text.startswith("connected"):
            done.set()

    relay = Relay()
    sender = WebRTCPeer(offerer=True, send_signal=relay.send_from("sender"), on_status=status)
    receiver = WebRTCPeer(offerer=False, send_signal=relay.send_from("receiver"))
    relay.peers.update(sender=sender, receiver=receiver)
    try:
        receiver.start()
        sender.start()
        sender.wait_open(OPEN_TIMEOUT)
        assert done.wait(10)
        assert seen[0] == "gathering candidates..."
        assert "offer sent, waiting for answer" in seen
        assert seen.index("offer sent, waiting for answer") < seen.index("connected")
    finally:
        sender.close()
        receiver.close()


def test_no_answer_times_out_with_connect_error() -> None:
    sent: list[str] = []
    peer = WebRTCPeer(offerer=True, send_signal=lambda kind, payload: sent.append(kind))
    try:
        peer.start()
        with pytest.raises(ConnectError, match="not established within"):
            peer.wait_open(1.0)
        assert sent == ["offer"]
    finally:
        started = time.monotonic()
        peer.close()
        peer.close()
        assert time.monotonic() - started < 10
    with pytest.raises(ConnectError):
        peer.wait_open(1.0)


def test_invalid_offer_fails_fast() -> None:
    answers: list[str] = []
    peer = WebRTCPeer(offerer=False, send_signal=lambda kind, payload: answers.append(kind))
    try:
        peer.start()
        peer.handle_signal("offer", {"sdp": "v=0\r\nthis is not sdp\r\n", "type": "offer"})
        with pytest.raises(ConnectError, match="offer"):
            peer.wait_open(10.0)
        assert answers == []
    finally:
        peer.close()


def test_offer_without_sdp_fails_and_unknown_signals_are_ignored() -> None:
    peer = WebRTCPeer(offerer=False, send_signal=lambda kind, payload: None)
    try:
        peer.start()
        peer.handle_signal("crypto", {"publicKey": "x"})  # not ours: ignored
        peer.handle_signal("answer", {"sdp": "v=0", "type": "answer"})  # wrong role: ignored
        peer.handle_signal("offer", {"type": "offer"})
        with pytest.raises(ConnectError, match="without SDP"):
            peer.wait_open(10.0)
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"candidate": "candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host", "sdpMid": "0"},
            ("192.0.2.7", 5000, "host", "0", None),
        ),
        (
            {
                "candidate": "1 1 UDP 1694498815 198.51.100.1 6000 typ srflx raddr 10.0.0.1 rport 5000",
                "sdpMLineIndex": 0,
            },
            ("198.51.100.1", 6000, "srflx", None, 0),
        ),
        (
            {"candidate": "a=candidate:2 1 udp 1 203.0.113.9 3478 typ relay raddr 0.0.0.0 rport 0"},
            ("203.0.113.9", 3478, "relay", None, 0),
        ),
    ],
)
def test_parse_candidate_forms(payload: dict[str, Any], expected: tuple[Any, ...]) -> None:
    cand = parse_candidate(payload)
    assert cand is not None
    assert (cand.ip, cand.port, cand.type, cand.sdpMid, cand.sdpMLineIndex) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"candidate": ""},
        {"candidate": "candidate:"},
        {"candidate": "candidate:1 2 3"},
        {"candidate": None},
        {"candidate": ["x"]},
    ],
)
def test_parse_candidate_rejects_empty_and_malformed(payload: dict[str, Any]) -> None:
    assert parse_candidate(payload) is None


def test_importing_the_module_does_not_load_aiortc() -> None:
    code = (
        "import sys, sp2p.net.webrtc, sp2p.net.webrtc_channel, sp2p.net.webrtc_sctp, "
        "sp2p.net.webrtc_ice, sp2p.net.loop\n"
        "loaded = sorted(m for m in ('aiortc', 'av', 'aioice') if m in sys.modules)\n"
        "print(','.join(loaded) or 'clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean"

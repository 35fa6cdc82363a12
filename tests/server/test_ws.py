"""The whole signalling choreography against a real server on a loopback port."""

from __future__ import annotations

import contextlib
import json
import re
import socket

import pytest
import websocket

from tests.server.conftest import RELAXED
from tests.server.helpers import Client, LiveServer, hello, http_get, live_server, pair, wait_until

SESSION_ID = re.compile(r"[23456789abcdefghjkmnpqrstuvwxyz]{8}")


def test_pairing_and_welcome_fields(server: LiveServer) -> None:
    sender, sid, welcome = hello(server.ws_url, client_type="cli")
    assert SESSION_ID.fullmatch(sid)
    assert welcome == {
        "sessionId": sid,
        "serverVersion": welcome["serverVersion"],
        "baseUrl": server.http_url,
    }  # no iceServers/turnAvailable by default
    receiver = Client(server.ws_url)
    receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "browser"})
    # the CLI receiver sends crypto right after join, without waiting for welcome
    receiver.send("crypto", {"publicKey": "UkVDRUlWRVI=", "parallelTCP": True})
    rwelcome = receiver.expect("welcome")
    assert rwelcome["sessionId"] == sid and rwelcome["peerClientType"] == "cli"
    assert sender.expect("peer-joined") == {"clientType": "browser"}
    assert sender.expect("crypto") == {"publicKey": "UkVDRUlWRVI=", "parallelTCP": True}
    sender.close()
    receiver.close()


def test_relay_is_byte_exact_both_ways(server: LiveServer) -> None:
    sender, receiver, _ = pair(server.ws_url)
    kinds = [
        "crypto",
        "offer",
        "answer",
        "candidate",
        "direct",
        "connected",
        "retry",
        "relay-denied",
        "relay-retry",
        "decline",
    ]
    for kind in kinds:
        text = f'{{ "type" : "{kind}", "payload":{{"b":1,"a":[2.50,"\\u00e9"]}}, "x": null }}'
        sender.send_raw(text)
        assert receiver.recv_text() == text
        receiver.send_raw(text)
        assert sender.recv_text() == text


def test_binary_frames_are_relayed_as_text(server: LiveServer) -> None:
    sender, receiver, _ = pair(server.ws_url)
    text = '{"type":"candidate","payload":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}'
    sender.send_raw(text, binary=True)
    sender.send_raw(b'\xff\xfe{"type":"crypto"}', binary=True)  # not UTF-8: dropped
    sender.send_raw('{"type":"connected","payload":{}}')
    assert receiver.ws.recv() == text  # a str: written as a text frame
    assert receiver.recv_text() == '{"type":"connected","payload":{}}'


def test_whitelist_and_spoofing(server: LiveServer) -> None:
    """S3/S2: only relayable types cross; server messages cannot be forged by a peer."""
    sender, receiver, sid = pair(server.ws_url)
    for kind in [
        "hello",
        "join",
        "welcome",
        "peer-joined",
        "peer-left",
        "error",
        "turn-credentials",
        "notice",
        "file-info",
        "transfer-complete",
        "bogus",
    ]:
        sender.send(
            kind,
            {
                "sessionId": sid,
                "from": "receiver",
                "code": "session_full",
                "version": 2,
                "bytesTransferred": 1,
            },
        )
    sender.send_raw("not json at all")
    sender.send_raw('{"type":["offer"]}')
    sender.send_raw("[" * 5000)
    sender.send("connected")
    assert receiver.expect("connected") == {}  # the first thing that arrives
    assert receiver.nothing_for(0.3)


def test_file_info_round_trip(server: LiveServer) -> None:
    sender, sid, _ = hello(server.ws_url)
    url = f"{server.http_url}/api/file-info/{sid}"
    assert http_get(url)[0] == 404  # not stored yet
    sender.send("file-info", {"data": "bm9uY2V8Y2lwaGVy"})
    sender.send("file-info", {"data": "c2Vjb25k"})  # stored once (S12)
    assert wait_until(lambda: http_get(url)[0] == 200)
    status, headers, body = http_get(url)  # the first one: relay.route stores it once
    assert status == 200
    assert body == b'{"data":"bm9uY2V8Y2lwaGVy"}\n'
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in headers
    assert http_get(url, method="POST")[0] == 405
    assert http_get(url, method="HEAD")[0] == 405
    assert http_get(f"{server.http_url}/api/file-info/")[0] == 404
    # the receiver cannot overwrite it, and it stays available after the join
    receiver = Client(server.ws_url)
    receiver.send("join", {"version": 2, "sessionId": sid})
    receiver.expect("welcome")
    receiver.send("file-info", {"data": "ZXZpbA=="})
    receiver.send("connected")
    sender.expect("peer-joined")
    sender.expect("connected")
    assert http_get(url)[2] == b'{"data":"bm9uY2V8Y2lwaGVy"}\n'
    sender.close()
    assert receiver.expect("peer-left") == {}
    assert http_get(url)[0] == 404  # deleted with the session


def test_file_info_size_cap() -> None:
    with live_server({**RELAXED, "max_file_info": 64}) as srv:
        sender, sid, _ = hello(srv.ws_url)
        sender.send("file-info", {"data": "A" * 65})
        sender.send("file-info", {"data": "A" * 64})
        url = f"{srv.http_url}/api/file-info/{sid}"
        assert wait_until(lambda: http_get(url)[0] == 200)
        assert http_get(url)[2] == b'{"data":"' + b"A" * 64 + b'"}\n'  # the oversized one never was


def test_unknown_session(server: LiveServer) -> None:
    client = Client(server.ws_url)
    client.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
    assert client.expect("error") == {"code": "session_not_found", "message": "transfer session not found"}
    assert client.closed_within(2)


def test_second_receiver_is_refused_and_the_pair_goes_on(server: LiveServer) -> None:
    sender, receiver, sid = pair(server.ws_url)
    intruder = Client(server.ws_url)
    intruder.send("join", {"version": 2, "sessionId": sid})
    assert intruder.expect("error") == {
        "code": "session_full",
        "message": "someone has already connected to this session",
    }
    assert intruder.closed_within(2)
    sender.send("crypto", {"publicKey": "a"})
    assert receiver.expect("crypto") == {"publicKey": "a"}


def test_version_mismatch_keeps_the_slot_and_tells_the_sender(server: LiveServer) -> None:
    sender, sid, _ = hello(server.ws_url, version=2)
    wrong = Client(server.ws_url)
    wrong.send("join", {"version": 1, "sessionId": sid})
    assert wrong.expect("error") == {
        "code": "version_mismatch",
        "message": "protocol version mismatch with sender",
    }
    assert wrong.closed_within(2)
    notice = sender.expect("notice")
    assert notice["code"] == "peer_version_mismatch"
    right = Client(server.ws_url)
    right.send("join", {"version": 2, "sessionId": sid})
    right.expect("welcome")
    sender.expect("peer-joined")


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ("garbage", "invalid message format"),
        ('{"type":"offer","payload":{}}', "expected hello or join"),
        ('{"type":"hello"}', "invalid hello payload"),
        ('{"type":"hello","payload":{"version":3}}', "unsupported protocol version"),
    ],
)
def test_bad_first_messages(server: LiveServer, first: str, message: str) -> None:
    client = Client(server.ws_url)
    client.send_raw(first)
    assert client.expect("error")["message"] == message
    assert client.closed_within(2)


def test_hello_deadline() -> None:
    with live_server({**RELAXED, "hello_timeout": 0.3}) as srv:
        client = Client(srv.ws_url)
        assert client.expect("error") == {
            "code": "invalid_message",
            "message": "expected hello or join (timed out)",
        }
        assert client.closed_within(2)


def test_oversize_message_closes_with_1009(server: LiveServer) -> None:
    sender, receiver, _ = pair(server.ws_url)
    big = json.dumps({"type": "offer", "payload": {"sdp": "x" * 70_000}})
    sender.send_raw(big)
    assert sender.closed_within(3)
    assert sender.close_status in (None, 1009)
    assert receiver.expect("peer-left") == {}
    # exactly at the limit is fine
    s2, r2, _ = pair(server.ws_url)
    text = '{"type":"offer","payload":{"sdp":"' + "y" * (65536 - 37) + '"}}'
    assert len(text.encode()) == 65536
    s2.send_raw(text)
    assert r2.recv_text() == text


def test_oversize_multibyte_text_is_measured_in_bytes(server: LiveServer) -> None:
    sender, receiver, _ = pair(server.ws_url)
    sender.send_raw('{"type":"offer","payload":{"sdp":"' + "é" * 40_000 + '"}}')  # 80 KB
    assert sender.closed_within(3)
    assert receiver.expect("peer-left") == {}


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True, claimed_len: int | None = None) -> bytes:
    """A client frame with an all-zero mask (payload bytes stay as they are)."""
    length = len(payload) if claimed_len is None else claimed_len
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def close_code_after_flood(client: Client, frames: list[bytes]) -> int:
    """Push frames until the server stops reading, then return its close code."""
    sock = client.ws.sock
    sock.settimeout(1.0)
    with contextlib.suppress(OSError):
        for frame in frames:
            sock.sendall(frame)
    sock.settimeout(3.0)
    head = sock.recv(4)
    assert head[0] == 0x88, head  # a close frame
    return int.from_bytes(head[2:4], "big")


@pytest.mark.parametrize("claimed", [10 << 20, (1 << 63) - 1])
def test_huge_frame_header_closes_with_1009(server: LiveServer, claimed: int) -> None:
    """S4: a 10 MiB text frame, and a header claiming a 2^63 length."""
    client = Client(server.ws_url)
    frame = raw_frame(0x1, b"x" * 100_000, claimed_len=claimed)
    assert close_code_after_flood(client, [frame]) == 1009
    assert http_get(f"{server.http_url}/health")[2] == b"ok"


def test_fragment_flood_closes_with_1009(server: LiveServer) -> None:
    """S4: 1,000 continuation fragments of 64 KiB."""
    client = Client(server.ws_url)
    frames = [raw_frame(0x1, b"{", fin=False)]
    frames += [raw_frame(0x0, b"x" * 65536, fin=False) for _ in range(1000)]
    assert close_code_after_flood(client, frames) == 1009
    assert http_get(f"{server.http_url}/health")[2] == b"ok"


def test_permessage_deflate_is_not_negotiated(server: LiveServer) -> None:
    """S4: no compression, so no inflation bomb."""
    ws = websocket.create_connection(
        server.ws_url, header=["Sec-WebSocket-Extensions: permessage-deflate"], timeout=5
    )
    extensions = ws.getheaders().get("sec-websocket-extensions")
    ws.close()
    assert extensions is None


def test_peer_left_when_either_side_goes(server: LiveServer) -> None:
    sender, receiver, sid = pair(server.ws_url)
    receiver.close()  # e.g. v2 close after P2P
    assert sender.expect("peer-left") == {}
    assert sender.closed_within(3)
    assert server.state.store.get(sid) is None
    # abrupt disconnect (no close frame) of the sender
    s2, r2, sid2 = pair(server.ws_url)
    s2.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s2.ws.sock.close()
    assert r2.expect("peer-left") == {}
    assert server.state.store.get(sid2) is None


def test_sender_messages_before_join_are_dropped(server: LiveServer) -> None:
    sender, sid, _ = hello(server.ws_url)
    sender.send("crypto", {"publicKey": "early"})
    sender.send("relay-retry")
    # file-info is stored, and it came last: once it shows, the two above were handled
    sender.send("file-info", {"data": "eA=="})
    assert wait_until(lambda: http_get(f"{server.http_url}/api/file-info/{sid}")[0] == 200)
    receiver = Client(server.ws_url)
    receiver.send("join", {"version": 2, "sessionId": sid})
    receiver.expect("welcome")
    sender.expect("peer-joined")
    sender.send("crypto", {"publicKey": "late"})
    assert receiver.expect("crypto") == {"publicKey": "late"}


def test_websocket_transport_options(server: LiveServer) -> None:
    """S4/W-9: every connection gets the limits the security cases expect."""
    with Client(server.ws_url):
        assert wait_until(lambda: len(server.state.peers) == 1)
        (peer,) = server.state.peers
        assert peer.max_message == 65536
        assert peer.ping_interval == 30.0  # upstream's period; a missed pong closes

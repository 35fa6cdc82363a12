"""sp2p.proto.signal: Go field names, omission rules, Go-compatible decoding."""

from __future__ import annotations

import json

import pytest

from sp2p.proto.signal import (
    MAX_SIGNAL_MESSAGE,
    PAYLOAD_TYPES,
    RELAYED_TYPES,
    SESSION_ID_ALPHABET,
    Candidate,
    ClientType,
    Crypto,
    Direct,
    Envelope,
    Error,
    ErrorCode,
    FileInfo,
    Hello,
    IceServer,
    Join,
    PeerJoined,
    Sdp,
    SignalFormatError,
    SignalType,
    TransferComplete,
    TurnCredentials,
    Welcome,
    session_id_from_random,
)


def test_wire_names() -> None:
    assert {t.value for t in SignalType} >= {
        "hello",
        "join",
        "welcome",
        "peer-joined",
        "crypto",
        "direct",
        "offer",
        "answer",
        "candidate",
        "connected",
        "relay-retry",
        "relay-denied",
        "turn-credentials",
        "file-info",
        "transfer-complete",
        "peer-left",
        "error",
        "retry",
    }
    assert {e.value for e in ErrorCode} >= {
        "invalid_message",
        "version_mismatch",
        "rate_limited",
        "server_busy",
        "internal_error",
        "session_not_found",
        "session_full",
    }
    assert [c.value for c in ClientType] == ["cli", "browser"]
    assert {t.value for t in RELAYED_TYPES} == {
        "offer",
        "answer",
        "candidate",
        "crypto",
        "direct",
        "connected",
        "retry",
        "relay-retry",
        "relay-denied",
        "decline",
    }
    assert MAX_SIGNAL_MESSAGE == 65536


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            Hello(2, "cli", "linux", "amd64"),
            '{"version":2,"clientType":"cli","clientOS":"linux","clientArch":"amd64"}',
        ),
        (Hello(2, "browser"), '{"version":2,"clientType":"browser"}'),
        (Join("abcdefgh", 2, "cli"), '{"version":2,"sessionId":"abcdefgh","clientType":"cli"}'),
        (Welcome("abcdefgh"), '{"sessionId":"abcdefgh"}'),
        (
            Welcome("s", (IceServer(("stun:a", "stun:b")),), True, "cli", "0.2.0", "https://x"),
            '{"sessionId":"s","iceServers":[{"urls":["stun:a","stun:b"]}],"turnAvailable":true,'
            '"peerClientType":"cli","serverVersion":"0.2.0","baseUrl":"https://x"}',
        ),
        (PeerJoined(), "{}"),
        (PeerJoined("browser"), '{"clientType":"browser"}'),
        (Crypto("AAAA"), '{"publicKey":"AAAA"}'),
        (Crypto("AAAA", True, True), '{"publicKey":"AAAA","preferTCP":true,"parallelTCP":true}'),
        (Direct("10.0.0.1:5000"), '{"tcp":"10.0.0.1:5000"}'),
        (Sdp("v=0", "offer"), '{"sdp":"v=0","type":"offer"}'),
        (Candidate("candidate:1", "0", 0), '{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}'),
        (TurnCredentials(()), '{"iceServers":[]}'),
        (
            TurnCredentials((IceServer(("turn:t",), "u", "p"),)),
            '{"iceServers":[{"urls":["turn:t"],"username":"u","credential":"p"}]}',
        ),
        (FileInfo("QUJD"), '{"data":"QUJD"}'),
        (TransferComplete(5), '{"bytesTransferred":5}'),
        (Error("session_full", "x"), '{"code":"session_full","message":"x"}'),
    ],
)
def test_encoding_matches_go(body: object, expected: str) -> None:
    envelope = Envelope.build("t", body)  # type: ignore[arg-type]
    assert envelope.to_json() == '{"type":"t","payload":' + expected + "}"


def test_round_trip_every_payload() -> None:
    samples = {
        SignalType.HELLO: Hello(1, "cli", "darwin", "arm64"),
        SignalType.JOIN: Join("23456789", 2, "browser"),
        SignalType.WELCOME: Welcome("x", (IceServer(("stun:s",), "u", "c"),), True, "cli"),
        SignalType.CRYPTO: Crypto("k", True, False),
        SignalType.CANDIDATE: Candidate("c", "m", 65535),
        SignalType.TURN_CREDENTIALS: TurnCredentials((IceServer(("turn:x",), "a", "b"),)),
        SignalType.ERROR: Error("a", "b"),
    }
    for msg_type, body in samples.items():
        parsed = Envelope.from_json(Envelope.build(msg_type, body).to_json())
        assert parsed.type == msg_type
        assert PAYLOAD_TYPES[msg_type](parsed.payload) == body


def test_go_html_escaping_and_raw_utf8() -> None:
    text = Envelope.build("error", Error("c", "a<b>&c \u2028 é")).to_json()
    assert "\\u003c" in text and "\\u003e" in text and "\\u0026" in text
    assert "\\u2028" in text and "é" in text
    assert Error.from_payload(Envelope.from_json(text).payload).message == "a<b>&c \u2028 é"


def test_case_insensitive_keys_last_wins() -> None:
    env = Envelope.from_json('{"TYPE":"hello","Payload":{"VERSION":1,"version":2,"ClientType":"cli"}}')
    assert env.type == "hello"
    hello = Hello.from_payload(env.payload)
    assert hello.version == 2 and hello.client_type == "cli"
    assert Hello.from_payload({"version": 2, "Version": 1}).version == 1  # last match wins


def test_null_and_missing_fields_are_zero() -> None:
    assert Hello.from_payload({"version": None, "clientType": None}) == Hello(0, "")
    assert Welcome.from_payload(None) == Welcome()
    assert Envelope.from_json('{"type":"hello","payload":null}').payload_ok
    assert not Envelope.from_json('{"type":"hello"}').payload_ok
    assert not Envelope.from_json('{"type":"hello","payload":[1]}').payload_ok
    assert Envelope.from_json('{"payload":{}}').type == ""


@pytest.mark.parametrize(
    "payload",
    [{"version": "2"}, {"version": 2.0}, {"version": True}, {"clientType": 5}, {"version": 1 << 64}],
)
def test_wrong_json_types_are_format_errors(payload: dict[str, object]) -> None:
    with pytest.raises(SignalFormatError):
        Hello.from_payload(payload)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        "[]",
        "1",
        '"hello"',
        '{"type":5}',
        '{"type":"a"',
        "[" * 100_000,
        '{"type":"a","payload":NaN}',
        b"\xff\xfe",
    ],
)
def test_malformed_envelopes(text: str | bytes) -> None:
    with pytest.raises(SignalFormatError):
        Envelope.from_json(text)
    assert issubclass(SignalFormatError, ValueError)


def test_candidate_index_is_uint16() -> None:
    with pytest.raises(SignalFormatError):
        Candidate.from_payload({"sdpMLineIndex": 65536})
    with pytest.raises(SignalFormatError):
        Candidate.from_payload({"sdpMLineIndex": -1})


def test_invalid_utf8_in_strings_is_replaced_like_go() -> None:
    env = Envelope.from_json(b'{"type":"error","payload":{"code":"a\xffb","message":""}}')
    assert Error.from_payload(env.payload).code == "a\ufffdb"


def test_session_id_rejection_sampling() -> None:
    # bytes >= 248 are skipped; the rest map through byte % 31
    assert session_id_from_random(bytes([248, 255, 0, 1, 2, 3, 4, 5, 6, 38])) == "23456789"
    assert session_id_from_random(bytes([31 + 30] * 8)) == "z" * 8
    assert session_id_from_random(bytes([250] * 40)) is None
    assert len(SESSION_ID_ALPHABET) == 31 and not set("01ilo") & set(SESSION_ID_ALPHABET)


def test_json_output_is_valid_json() -> None:
    text = Envelope.build(SignalType.WELCOME, Welcome("abc", base_url="http://a&b")).to_json()
    assert json.loads(text)["payload"]["baseUrl"] == "http://a&b"

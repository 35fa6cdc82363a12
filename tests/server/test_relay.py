"""Pure routing rules (server.relay): first message, join checks, per-message decisions."""

from __future__ import annotations

import json

import pytest

from server import relay
from server.relay import (
    AnswerRelayRetry,
    CountTransfer,
    Forward,
    Ignore,
    Limits,
    PeerView,
    Refusal,
    StoreFileInfo,
)
from sp2p.proto.constants import Role
from sp2p.proto.signal import RELAYED_TYPES, ErrorCode, Hello, Join


def view(**overrides: object) -> PeerView:
    base: dict[str, object] = dict(
        role=Role.SENDER,
        has_peer=True,
        since_join=10.0,
        turn_available=False,
        turn_answers=0,
        candidates=0,
        file_info_set=False,
        completed=False,
    )
    base.update(overrides)
    return PeerView(**base)  # type: ignore[arg-type]


def msg(msg_type: str, payload: object = None) -> str:
    return json.dumps({"type": msg_type, "payload": {} if payload is None else payload})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid message format"),
        ("[1,2]", "invalid message format"),
        ('{"type":7}', "invalid message format"),
        ('{"payload":{}}', "expected hello or join"),
        (msg("offer"), "expected hello or join"),
        ('{"type":"hello"}', "invalid hello payload"),
        ('{"type":"hello","payload":[]}', "invalid hello payload"),
        ('{"type":"hello","payload":{"version":"2"}}', "invalid hello payload"),
        ('{"type":"hello","payload":{"version":2.5}}', "invalid hello payload"),
        ('{"type":"hello","payload":null}', "unsupported protocol version"),
        (msg("hello", {"version": 3}), "unsupported protocol version"),
        (msg("hello", {"version": 0}), "unsupported protocol version"),
        ('{"type":"join"}', "invalid join payload"),
        (msg("join", {"version": 2, "sessionId": 5}), "invalid join payload"),
        (msg("join", {"version": 9, "sessionId": "x"}), "unsupported protocol version"),
    ],
)
def test_first_message_refusals(text: str, message: str) -> None:
    result = relay.parse_first(text)
    assert isinstance(result, Refusal)
    assert result.message == message
    expected = ErrorCode.VERSION_MISMATCH if "version" in message else ErrorCode.INVALID_MESSAGE
    assert result.code is expected


def test_first_message_accepts_hello_and_join() -> None:
    assert relay.parse_first(msg("hello", {"version": 1, "clientType": "cli"})) == Hello(1, "cli")
    assert relay.parse_first(msg("join", {"version": 2, "sessionId": "abc"})) == Join("abc", 2)


def test_join_checks_in_upstream_order() -> None:
    ok = relay.JoinCheck.OK
    assert (
        relay.check_join(exists=False, has_receiver=True, sender_version=2, receiver_version=1)
        is relay.SESSION_NOT_FOUND
    )
    assert (
        relay.check_join(exists=True, has_receiver=True, sender_version=2, receiver_version=1)
        is relay.SESSION_FULL
    )
    assert (
        relay.check_join(exists=True, has_receiver=False, sender_version=2, receiver_version=1)
        is relay.VERSION_MISMATCH
    )
    assert relay.check_join(exists=True, has_receiver=False, sender_version=1, receiver_version=1) is ok


# RELAYED_TYPES itself is pinned to the spec's list by test_signal_proto
@pytest.mark.parametrize("msg_type", sorted(t.value for t in RELAYED_TYPES))
def test_relayed_types_are_forwarded_byte_for_byte(msg_type: str) -> None:
    text = f'{{"type":"{msg_type}", "payload": {{"x": [1, 2.50, "\\u00e9"]}}, "extra": true}}'
    assert relay.route(text, view(), Limits()) == Forward(text, msg_type)


@pytest.mark.parametrize(
    "msg_type",
    [
        "hello",
        "join",
        "welcome",
        "peer-joined",
        "error",
        "peer-left",
        "turn-credentials",
        "notice",
        "bogus",
        "",
    ],
)
def test_server_types_are_never_relayed(msg_type: str) -> None:
    assert isinstance(relay.route(msg(msg_type), view(), Limits()), Ignore)


def test_nothing_relayed_before_the_receiver_joins() -> None:
    assert isinstance(relay.route(msg("crypto"), view(has_peer=False), Limits()), Ignore)
    assert isinstance(
        relay.route(msg("relay-retry"), view(has_peer=False, turn_available=True), Limits()), Ignore
    )


def test_undecodable_messages_are_ignored() -> None:
    assert isinstance(relay.route("{oops", view(), Limits()), Ignore)


def test_file_info_only_from_the_sender_once_and_capped() -> None:
    text = msg("file-info", {"data": "QUJD"})
    assert relay.route(text, view(has_peer=False), Limits()) == StoreFileInfo("QUJD")
    assert isinstance(relay.route(text, view(role=Role.RECEIVER), Limits()), Ignore)
    assert isinstance(relay.route(text, view(file_info_set=True), Limits()), Ignore)
    big = msg("file-info", {"data": "A" * 101})
    assert isinstance(relay.route(big, view(), Limits(max_file_info=100)), Ignore)
    assert isinstance(relay.route(msg("file-info", {"data": 5}), view(), Limits()), Ignore)


def test_transfer_complete_counted_once() -> None:
    text = msg("transfer-complete", {"bytesTransferred": 42})
    assert relay.route(text, view(), Limits()) == CountTransfer(42)
    assert isinstance(relay.route(text, view(completed=True), Limits()), Ignore)


def test_relay_retry_waits_for_the_minimum_delay() -> None:
    text = msg("relay-retry")
    limits = Limits(turn_delay=5.0, turn_max_per_peer=2)
    assert relay.route(text, view(turn_available=True, since_join=1.5), limits) == AnswerRelayRetry(3.5, text)
    assert relay.route(text, view(turn_available=True, since_join=9.0), limits) == AnswerRelayRetry(0.0, text)
    # past the per-peer budget: still relayed, no more credentials
    assert relay.route(text, view(turn_available=True, turn_answers=2), limits) == Forward(
        text, "relay-retry"
    )
    # no TURN configured: plain relay
    assert relay.route(text, view(), limits) == Forward(text, "relay-retry")


def test_candidate_cap() -> None:
    text = msg("candidate", {"candidate": "c"})
    assert relay.route(text, view(candidates=3), Limits(max_candidates=3)) == Ignore(
        "candidate limit reached"
    )
    assert isinstance(relay.route(text, view(candidates=2), Limits(max_candidates=3)), Forward)


def test_client_fields_are_cleaned() -> None:
    assert relay.clean_client_field("cli") == "cli"
    assert relay.clean_client_field("browser") == "browser"
    assert relay.clean_client_field("x\r\nInjected: 1") == ""
    assert relay.clean_client_field("\x1b[31mred") == ""
    assert relay.clean_client_field("a" * 17) == ""

"""The records one node publishes to another (server.redis_frames): pure, no Redis."""

from __future__ import annotations

import json

import pytest

from server import redis_frames as frames
from server.store import Pairing
from sp2p.proto.constants import Role

#: texts are counted, never scanned: newlines, spaces, the mark, non-ASCII
AWKWARD = '{"type":"offer","payload":{"sdp":"v=0\\r\\n a b\\n"}}\n \x1e t x sender - 3\n\u00e9\U0001f600'


def test_records_come_back_in_order_with_every_field() -> None:
    pairing = Pairing(1754000000.123456, "node2", "browser")
    raw = frames.payload([
        frames.text("sid1", Role.RECEIVER, AWKWARD),
        frames.paired("sid1", pairing, AWKWARD),
        frames.text("sid2", Role.SENDER, ""),
        frames.close("sid1", Role.SENDER, 1001, "peer's server node went away\n"),
    ])  # fmt: skip
    got = list(frames.decode(raw))
    assert got == [
        frames.Frame(frames.TEXT, "sid1", Role.RECEIVER, AWKWARD),
        frames.Frame(frames.PAIRED, "sid1", Role.SENDER, AWKWARD, pairing=pairing),
        frames.Frame(frames.TEXT, "sid2", Role.SENDER, ""),
        frames.Frame(frames.CLOSE, "sid1", Role.SENDER, "peer's server node went away\n", 1001),
    ]


def test_a_pairing_with_an_empty_client_type() -> None:
    pairing = Pairing(1.5, "n", "")
    [frame] = frames.decode(frames.payload([frames.paired("s", pairing, "{}")]))
    assert frame.pairing == pairing and frame.body == "{}"


def test_the_json_of_the_previous_release_is_still_read() -> None:
    old = json.dumps([
        {"t": "hi", "s": "a", "r": "receiver"},
        {"t": "pj", "j": [2.5, "n1", "cli"], "s": "a", "r": "sender"},
        {"c": 1001, "why": "bye", "s": "a", "r": "sender"},
    ])  # fmt: skip
    assert list(frames.decode(old)) == [
        frames.Frame(frames.TEXT, "a", Role.RECEIVER, "hi"),
        frames.Frame(frames.PAIRED, "a", Role.SENDER, "pj", pairing=Pairing(2.5, "n1", "cli")),
        frames.Frame(frames.CLOSE, "a", Role.SENDER, "bye", 1001),
    ]
    assert list(frames.decode(json.dumps({"t": "one", "s": "b", "r": "sender"}))) == [
        frames.Frame(frames.TEXT, "b", Role.SENDER, "one")
    ]


@pytest.mark.parametrize(
    "raw",
    [
        frames.payload([frames.text("s", Role.SENDER, "abc")])[:-1],  # truncated body
        frames.MARK + "t s sender - 3",  # no newline
        frames.MARK + "x s sender - 0\n",  # unknown kind
        frames.MARK + "t s nobody - 0\n",  # unknown role
        frames.MARK + "t s sender 0\n",  # a field missing
        "not json",
    ],
)
def test_a_malformed_payload_raises_value_error(raw: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        list(frames.decode(raw))

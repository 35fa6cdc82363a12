"""Issue 16 item 5: remote ICE candidates are capped in the client (a hostile server relays
any number; ours stops at 200). Two real aiortc peers; the relay between them floods one side."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sp2p.net.webrtc_ice import MAX_REMOTE_CANDIDATES
from tests.net.webrtc_pair import Message, open_pair

pytestmark = pytest.mark.webrtc

FLOOD = 2000


def _flood(kind: str, payload: dict[str, Any]) -> list[Message]:
    if kind != "offer":
        return [(kind, payload)]
    bogus = [
        ("candidate", {"candidate": f"candidate:{i} 1 udp 2130706431 198.51.100.{i % 250 + 1} {10000 + i} typ host",
                       "sdpMid": "0", "sdpMLineIndex": 0})
        for i in range(FLOOD)
    ]
    junk = [("candidate", {"candidate": f"candidate:junk {i}"}) for i in range(FLOOD)]
    return [*bogus, *junk, (kind, payload)]


def test_a_candidate_flood_is_capped_with_one_verbose_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sp2p.net.webrtc_ice")
    with open_pair(_flood) as (snd, rcv, _):
        snd.send(b"still works")
        assert rcv.recv(10) == b"still works"
    dropped = [r.getMessage() for r in caplog.records if "ICE candidates from the peer" in r.getMessage()]
    assert len(dropped) == 1, dropped
    assert f"at most {MAX_REMOTE_CANDIDATES} are used" in dropped[0]

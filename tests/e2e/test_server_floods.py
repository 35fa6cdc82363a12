"""Issue 16 item 5 (T19, S2 from the client's side): a hostile signaling server floods the
clients with `direct` addresses and unknown messages. The client uses a bounded number, drops
the rest with one verbose line per kind, and the transfer still succeeds. (The ICE candidate
flood is in tests/net/test_webrtc_floods.py: WebRTC between two CLIs needs a netlab namespace.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sp2p.net.tcp import MAX_PEER_ADDRESSES, TcpRace
from sp2p.proto.constants import Role
from sp2p.status import ExitStatus
from tests.e2e.harness import Result, finish, read_code, spawn
from tests.support.evil_server import EvilServer
from tests.support.server_proc import ServerProc

pytestmark = pytest.mark.e2e

FLOOD = 2000


def _flood_the_receiver(extra: list[dict[str, Any]]) -> Any:
    """The receiver gets the flood ahead of the sender's first real address, and the sender
    gets no addresses at all: only the receiver dials, so its caps decide (no race)."""
    flooded = False

    def rewrite(msg: dict[str, Any], role: str) -> list[dict[str, Any]]:
        nonlocal flooded
        if msg.get("type") != "direct":
            return [msg]
        if role != "receiver" or flooded:
            return []
        flooded = True
        return [*extra, msg]

    return rewrite


def _run(sp2p_server: ServerProc, env: dict[str, str], tmp_path: Path, outdir: Path,
         flood: list[dict[str, Any]], transport: str) -> tuple[Result, Result]:
    src = tmp_path / "data.txt"
    src.write_text("flood survivor\n" * 1000)
    with EvilServer(sp2p_server.ws_url, _flood_the_receiver(flood)) as evil:
        evil_env = {**env, "SP2P_SERVER": evil.http_url}
        sender = spawn(["send", "-transport", transport, str(src)], evil_env)
        r = finish(spawn(["receive", "-v", "-transport", transport, "-output", str(outdir),
                          read_code(sender)], evil_env), timeout=90)
        s = finish(sender, timeout=60)
    assert (s.rc, r.rc) == (ExitStatus.OK, ExitStatus.OK), s.err + r.err
    assert (outdir / "data.txt").read_text() == src.read_text()
    return s, r


def _lines(err: str, text: str) -> list[str]:
    return [line for line in err.splitlines() if text in line]


def test_direct_and_unknown_message_flood_is_capped(sp2p_server: ServerProc, env: dict[str, str],
                                                    tmp_path: Path, outdir: Path) -> None:
    # malformed ones, then ports 1-10 where nothing listens (refused at once), then the real one
    flood = [{"type": "direct", "payload": {"tcp": f"nonsense-{i}"}} for i in range(200)]
    flood += [{"type": "direct", "payload": {"tcp": f"127.0.0.1:{1 + i}"}} for i in range(MAX_PEER_ADDRESSES - 6)]
    flood += [{"type": "x-junk", "payload": {"n": i}} for i in range(FLOOD)]
    _, r = _run(sp2p_server, env, tmp_path, outdir, flood, "tcp")
    dropped = _lines(r.err, "peer addresses")
    assert len(dropped) == 1, dropped
    assert f"at most {MAX_PEER_ADDRESSES} are dialed" in dropped[0]
    assert len(_lines(r.err, "ignoring messages of unknown types")) == 1


def test_excess_direct_addresses_are_not_dialed(caplog: pytest.LogCaptureFixture) -> None:
    """More than MAX_PEER_ADDRESSES usable addresses: the rest are dropped, with one line."""
    caplog.set_level(logging.DEBUG, logger="sp2p.net.tcp")
    race = TcpRace(Role.RECEIVER, lambda channel: channel.close(), allow_loopback=True)
    try:
        taken = [race.add_peer_address(f"127.0.0.1:{1 + i}") for i in range(3 * MAX_PEER_ADDRESSES)]
    finally:
        race.stop()
    assert sum(taken) == MAX_PEER_ADDRESSES == race.attempts
    dropped = [r.getMessage() for r in caplog.records if "peer addresses" in r.getMessage()]
    assert len(dropped) == 1 and "ignoring excess peer addresses" in dropped[0]

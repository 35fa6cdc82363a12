"""A sender that waited past the server's session lifetime is told what happened and what to do,
not 'server error: session expired' (a real server with its lifetime scaled down)."""

from __future__ import annotations

from pathlib import Path

from sp2p.status import ExitStatus
from tests.e2e.harness import cli_env, finish, read_code, spawn
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server


def test_a_session_the_server_expired_says_so_and_what_to_do(tmp_path: Path) -> None:
    src = tmp_path / "late.txt"
    src.write_text("nobody came")
    with start_server(*NO_LIMIT_FLAGS, "-session-max-age", "2s", "-reaper-interval", "1s") as server:
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        sender = spawn(["send", str(src)], cli_env(server.http_url, home))
        read_code(sender)
        s = finish(sender, timeout=60)
    assert s.rc == ExitStatus.SIGNALING, s.err
    assert "Traceback" not in s.err
    assert s.err.splitlines()[-2:] == [
        "sp2p: error: the signaling server ended this transfer session: session expired",
        "sp2p: hint: a code lasts a limited time (an hour, or 5 minutes without traffic, unless the "
        "server says otherwise); start again: sp2p send gives a new code",
    ]

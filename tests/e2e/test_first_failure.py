"""Issue 16 item 3: the first failure wins, so the message and exit code name the real cause.

The victims are the real CLI; the attackers are real CLIs whose transfer is scripted from
sp2p.proto (tests/support/scripted_cli.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import Result, finish, kill, read_code, spawn, spawn_scripted
from tests.support.scripted_cli import BACKSLASH_MEMBER

pytestmark = pytest.mark.e2e


def _only_error(r: Result) -> str:
    """The one error line (no traceback, no secondary failure shown)."""
    assert "Traceback" not in r.err, r.err
    lines = [line for line in r.err.splitlines() if line.startswith("sp2p: error: ")]
    assert len(lines) == 1, r.err
    assert "FAILED" not in r.err, r.err  # never the state a consequence saw
    return lines[0].removeprefix("sp2p: error: ")


def _victim_sender(env: dict[str, str], script: str) -> Result:
    """A real sender of a stream that stays open (so it is still SENDING) against `script`."""
    sender = spawn(["send", "-name", "s.bin", "-"], env, stdin=subprocess.PIPE)
    receiver = spawn_scripted(["receive", read_code(sender)], env, script=script)
    try:
        stdin = sender.stdin
        assert stdin is not None
        stdin.write(b"some bytes\n")
        stdin.flush()
        sender.stdin = None  # finish() would close it: the stream must stay open (still SENDING)
        try:
            return finish(sender, timeout=60)
        finally:
            stdin.close()
    finally:
        kill(receiver)
        kill(sender)


def test_a_receiver_sending_metadata_is_a_protocol_violation(env: dict[str, str]) -> None:
    s = _victim_sender(env, "send-metadata")
    assert s.rc == ExitStatus.TRANSFER, s.err  # was 1: "start is not allowed in state FAILED"
    assert _only_error(s).startswith("unexpected message type 0x01 in state ")


def test_an_early_complete_names_the_state_it_came_in(env: dict[str, str]) -> None:
    s = _victim_sender(env, "early-complete")
    assert s.rc == ExitStatus.TRANSFER, s.err
    assert _only_error(s) in (
        "unexpected message type 0x05 in state SENDING", "unexpected message type 0x05 in state IDLE",
    )


def test_a_sender_that_sends_more_than_announced(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    sender = spawn_scripted(["send", str(src)], env, script="oversend")
    try:
        r = finish(spawn(["receive", "-output", str(outdir), read_code(sender)], env), timeout=60)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.TRANSFER, r.err  # was "unexpected message type 0x02 in state FAILED"
    assert _only_error(r) == "the sender sent more than the announced 10 bytes"
    assert list(outdir.iterdir()) == []


def test_a_rejected_member_name_is_escaped_once(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_text("x")
    sender = spawn_scripted(["send", str(src)], env, script="tar-backslash")
    try:
        r = finish(spawn(["receive", "-output", str(outdir), read_code(sender)], env), timeout=60)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.TRANSFER, r.err
    shown = BACKSLASH_MEMBER.replace("\\", "\\\\")  # one backslash shows as two, never four
    assert _only_error(r) == f"refusing the received folder: unsafe member name {shown}: name contains a backslash"
    assert list(outdir.iterdir()) == []

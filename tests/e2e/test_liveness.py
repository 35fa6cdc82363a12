"""Issue 16 items 1 and 2: no peer holds us forever (one liveness rule, a progress floor).

The victims are the real CLI; the attackers are real CLIs whose transfer is scripted from
sp2p.proto (tests/support/scripted_cli.py). The victims' limits are scaled down so a stall
shows in seconds; the rule is the shipped one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import Result, finish, kill, read_code, spawn_scripted

pytestmark = pytest.mark.e2e


#: the victim's peer heartbeats every PEER_HEARTBEAT s of silence (the shipped 5 s, scaled like
#: the victim's limits); HEARTBEATS_SEEN is long enough for it to have sent one
PEER_HEARTBEAT = 1.0
HEARTBEATS_SEEN = 3.0


def _feed(proc: subprocess.Popen[bytes], size: int) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.write(os.urandom(size))
        proc.stdin.flush()


def _one_line_error(r: Result) -> None:
    assert "Traceback" not in r.err, r.err
    assert r.err.count("sp2p: error: ") == 1, r.err


def _wait_for_bytes(outdir: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in outdir.iterdir()):
            return
        time.sleep(0.05)
    raise AssertionError("no data reached the receiver")


def test_item1_frozen_receiver_ends_the_sender(env: dict[str, str], outdir: Path) -> None:
    """SIGSTOP on the receiver: the sender's own heartbeats and writes must not keep it waiting."""
    sender = spawn_scripted(["send", "-name", "s.bin", "-compress", "0", "-"], env, dead_after=4,
                            stdin=subprocess.PIPE)
    receiver = spawn_scripted(["receive", "-output", str(outdir), read_code(sender)], env,
                              heartbeat=PEER_HEARTBEAT)
    try:
        _feed(sender, 1 << 20)
        _wait_for_bytes(outdir)
        time.sleep(HEARTBEATS_SEEN)
        os.killpg(receiver.pid, signal.SIGSTOP)
        threading.Thread(target=_feed, args=(sender, 32 << 20), daemon=True).start()
        s = finish(sender, timeout=60)
    finally:
        kill(receiver)
        kill(sender)
    assert s.rc == ExitStatus.TIMEOUT, s.err
    assert "sp2p: error: the receiver has been silent for 4 s" in s.err
    _one_line_error(s)


@pytest.mark.parametrize("script", ["never-complete", "never-offer"])
def test_item1_receiver_that_never_confirms(script: str, env: dict[str, str], tmp_path: Path,
                                            outdir: Path) -> None:
    """A receiver that heartbeats but never sends Complete (or, with resume, never its offer)."""
    src = tmp_path / "small.txt"
    src.write_text("hello\n" * 100)
    sender = spawn_scripted(["send", str(src)], env, window=3)
    receiver = spawn_scripted(["receive", "-output", str(outdir), read_code(sender)], env,
                              script=script)
    try:
        s = finish(sender, timeout=60)
    finally:
        kill(receiver)
    assert s.rc == ExitStatus.TIMEOUT, s.err
    assert "sp2p: error: the receiver made almost no progress in 3 s (under 64 KiB)" in s.err
    _one_line_error(s)


@pytest.mark.parametrize("script", ["heartbeats-only", "dribble"])
def test_item2_progress_floor_on_the_receiver(script: str, env: dict[str, str], tmp_path: Path,
                                              outdir: Path) -> None:
    """C15: heartbeats before Metadata, or one byte at a time, cannot hold the receiver."""
    src = tmp_path / "x.txt"
    src.write_text("x")
    sender = spawn_scripted(["send", str(src)], env, script=script)
    try:
        r = finish(spawn_scripted(["receive", "-output", str(outdir), read_code(sender)], env, window=3),
                   timeout=60)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.TIMEOUT, r.err
    assert "sp2p: error: the sender made almost no progress in 3 s (under 64 KiB)" in r.err
    _one_line_error(r)
    assert list(outdir.iterdir()) == []  # the partial file is gone


def test_silent_sender_ends_the_receiver(env: dict[str, str], outdir: Path) -> None:
    """The mirror of item 1 (exit 8 on the receiving side): a frozen sender."""
    sender = spawn_scripted(["send", "-name", "s.bin", "-compress", "0", "-"], env, heartbeat=PEER_HEARTBEAT,
                            stdin=subprocess.PIPE)
    receiver = spawn_scripted(["receive", "-output", str(outdir), read_code(sender)], env, dead_after=4)
    try:
        _feed(sender, 1 << 20)
        _wait_for_bytes(outdir)
        time.sleep(HEARTBEATS_SEEN)
        os.killpg(sender.pid, signal.SIGSTOP)
        r = finish(receiver, timeout=60)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.TIMEOUT, r.err
    assert "sp2p: error: the sender has been silent for 4 s" in r.err
    _one_line_error(r)
    assert list(outdir.iterdir()) == []

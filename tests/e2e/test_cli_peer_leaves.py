"""A peer interrupted or killed while the two sides connect: it exits as interrupted, the
other names the peer that left (exit 6, as for a peer that cancels), nothing lands in -output
(tests/e2e/test_cli_edges.py has the other bad input)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import finish, kill, read_code, spawn, stderr_until
from tests.e2e.test_cli_edges import one_line

pytestmark = pytest.mark.e2e


def test_ctrl_c_while_connecting(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """The receiver interrupted once it joined (its verify line), as it connects: 130 for it,
    one line and a non-zero exit for the sender (no path, or cancelled if the link was up
    already), nothing in -output. 32 MiB: far from done by the time the signal lands."""
    marker = "Verify:"
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(32 << 20))
    sender = spawn(["send", "-compress", "0", str(src)], env)
    try:
        receiver = spawn(["receive", "-output", str(outdir), read_code(sender)], env)
        assert receiver.stderr is not None
        seen = b""
        while marker.encode() not in seen:
            byte = receiver.stderr.read(1)
            assert byte, seen
            seen += byte
        os.killpg(receiver.pid, signal.SIGINT)
        r = finish(receiver, timeout=60)
        s = finish(sender, timeout=60)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.INTERRUPTED and one_line(r) == "sp2p: error: interrupted"
    assert s.rc == ExitStatus.TRANSFER, s.err  # a peer that left, whether the link was up or not
    one_line(s)
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize(("victim", "sig", "rc"), [("receiver", signal.SIGINT, ExitStatus.INTERRUPTED),
                                                   ("sender", signal.SIGINT, ExitStatus.INTERRUPTED),
                                                   ("receiver", signal.SIGKILL, -signal.SIGKILL)])
def test_a_peer_that_goes_away_mid_connect_is_named(victim: str, sig: signal.Signals, rc: int,
                                                     env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """Both sides in their 30 s attempt that cannot connect (TCP-only sender, WebRTC-only
    receiver) when one is interrupted or killed: the other says that peer left (exit 6, as for
    a peer that cancels), not 'no connection' (4) with a hint to compare the codes."""
    src = tmp_path / "note.txt"
    src.write_text("never sent")
    sender = spawn(["send", "-transport", "tcp", str(src)], env)
    receiver = None
    try:
        receiver = spawn(["receive", "-transport", "webrtc", "-output", str(outdir), read_code(sender)], env)
        for proc in (sender, receiver):
            stderr_until(proc, "Verify:")
        gone, stays = (receiver, sender) if victim == "receiver" else (sender, receiver)
        os.killpg(gone.pid, sig)
        g = finish(gone, timeout=60)
        s = finish(stays, timeout=60)
    finally:
        kill(sender)
        if receiver is not None:
            kill(receiver)
    assert g.rc == rc, g.err
    assert s.rc == ExitStatus.TRANSFER, s.err
    assert one_line(s) == f"sp2p: error: the {victim} left while the two sides were connecting"
    assert "same code" not in s.err
    assert list(outdir.iterdir()) == []


def test_a_sender_killed_before_it_sent_its_key(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """The sender stopped before the receiver joins (so its key never goes out), then killed:
    the receiver says the sender left (exit 6), not a signaling failure (3)."""
    src = tmp_path / "note.txt"
    src.write_text("never sent")
    sender = spawn(["send", str(src)], env)
    try:
        code = read_code(sender)
        os.killpg(sender.pid, signal.SIGSTOP)
        receiver = spawn(["receive", "-output", str(outdir), code], env)
        try:
            stderr_until(receiver, "Connected to the sender's session")
            os.killpg(sender.pid, signal.SIGKILL)
            r = finish(receiver, timeout=60)
        finally:
            kill(receiver)
    finally:
        kill(sender)
    assert r.rc == ExitStatus.TRANSFER, r.err
    assert one_line(r) == "sp2p: error: the sender left before the transfer started"
    assert list(outdir.iterdir()) == []

"""Paths a new user walks that no other test did (session 10's review): each test here failed
before the fix it came with. All through the real CLI against a real server."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import CODE_RE, REPO, finish, kill, read_code, spawn, stderr_until
from tests.e2e.ptyrun import finish_tty, spawn_tty

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("qr", [[], ["-qr"]], ids=["plain", "qr"])
def test_send_dash_typed_on_the_terminal_keeps_every_key(env: dict[str, str], qr: list[str]) -> None:
    """`sp2p send -` with no pipe reads what is typed on the terminal. The waiting room's key
    listener (q toggles the QR code) read the same terminal and ate the keys typed while the
    sender waited, Ctrl-D included: the receiver got nothing and the sender read on forever.
    With -qr the code is drawn, without its 'press q to hide'."""
    sender = spawn_tty(["send", *qr, "-"], env)
    receiver = None
    try:
        sender.expect(CODE_RE.pattern)
        code = sender.match.group(0)
        shown = sender.before or ""
        sender.expect("Ctrl-D")  # it says how the typing ends
        sender.expect("Waiting for receiver")
        shown += sender.before or ""
        sender.send("hello q world\n")
        sender.sendeof()
        receiver = spawn(["receive", "-stdout", code], env)
        r = finish(receiver, timeout=60)
        rc, rest = finish_tty(sender)
        assert (rc, r.rc) == (0, 0), rest + r.err
        assert r.out == b"hello q world\n"
        assert "press q" not in shown + rest  # no key does anything here
        assert ("\u2580" in shown or "\u2584" in shown) == bool(qr)  # the code's half blocks
    finally:
        if receiver is not None and receiver.poll() is None:
            kill(receiver)
        sender.close(force=True)


def test_several_paths_say_file_not_files_for_one(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "only.txt").write_text("1")
    sender = spawn(["send", str(tmp_path / "one")], env)
    try:
        assert sender.stderr is not None
        line = next(raw.decode() for raw in sender.stderr if b"Sending:" in raw)
        assert line.rstrip().endswith(", 1 file)"), line
    finally:
        kill(sender)


def test_a_stream_slow_to_start_is_not_taken_for_a_dead_sender(env: dict[str, str], outdir: Path) -> None:
    """`pg_dump | sp2p send -`: the first byte may come long after the receiver. The sender read
    that byte (a compression sample, unused for a stream) before its pump, and so its
    heartbeats, started: 8 s on, a healing receiver took the silent sender for a dead path and
    reconnected (a receiver with -reconnect 0 would wait 120 s, then fail)."""
    sender = spawn(["send", "-name", "late.txt", "-"], env, stdin=subprocess.PIPE)
    receiver = None
    try:
        code = read_code(sender)
        receiver = spawn(["receive", "-output", str(outdir), code], env)
        stderr_until(receiver, "Connected via")
        time.sleep(12)  # past the 8 s in which a healing peer notices a silent one
        assert sender.stdin is not None
        sender.stdin.write(b"at last\n")
        sender.stdin.close()
        r, s = finish(receiver), finish(sender)
        assert (s.rc, r.rc) == (0, 0), s.err + r.err
        assert "Connection lost" not in r.err, r.err
        assert (outdir / "late.txt").read_bytes() == b"at last\n"
    finally:
        for proc in (sender, receiver):
            if proc is not None and proc.poll() is None:
                kill(proc)


def test_stdout_on_a_terminal_is_refused_before_the_code_is_used(env: dict[str, str], tmp_path: Path) -> None:
    """`receive -stdout` with no pipe wrote the sender's bytes raw into the terminal: an
    escape sequence in them could set the title, plant a link or write the clipboard (T10's
    attacks, through the data rather than a name). Refused before the join, as curl refuses
    binary output to a terminal; the code then still works for a receiver that pipes it."""
    src = tmp_path / "escapes.txt"
    src.write_bytes(b"hi \x1b]0;pwned\x07 there\n")
    sender = spawn(["send", str(src)], env)
    try:
        code = read_code(sender)
        child = spawn_tty(["receive", "-yes", "-stdout", code], env)
        rc, out = finish_tty(child)
        assert rc == 2, out
        assert "\x1b]0;" not in out
        assert "-stdout would write" in out and "sp2p: hint:" in out
        r = finish(spawn(["receive", "-stdout", code], env))
        assert r.rc == 0 and r.out == src.read_bytes(), r.err
        assert finish(sender).rc == 0
    finally:
        kill(sender)


@pytest.mark.parametrize(("topic", "flag"), [("send", "-compress int"), ("receive", "-output str"),
                                             ("recv", "-stdout")])
def test_help_for_a_command_shows_its_flags(topic: str, flag: str) -> None:
    """`sp2p help send` (as `go help build`) printed the general usage, without a flag."""
    done = subprocess.run([sys.executable, "-m", "sp2p", "help", topic], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"usage: sp2p {'send' if topic == 'send' else 'receive'} [flags]")
    assert f"\n  {flag}\n" in done.stderr


def test_help_for_anything_else_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "sp2p", "help", "sned"], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "sp2p: error: no help for: sned"

"""CLI behaviour under hostile names, secrets hygiene, stalls and interrupts (T10, T17, T20, W3)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sp2p.proto.liveness import HEAL_DEAD_AFTER
from sp2p.status import ExitStatus
from tests.e2e.harness import CODE_RE, Result, finish, kill, read_code, spawn

pytestmark = pytest.mark.e2e

GO_CLI = Path("/work/shared/reference/sp2p")
#: C0 (but newline), DEL, C1, bidi and zero-width code points must never reach the terminal
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(
    "name",
    ["\x1b[1A\x1b[2Kfake.txt", "bell\a\b\r.txt", "osc\x1b]8;;http://evil\x1b\\link.txt",
     "clip\x1b]52;c;aGk=\x07.txt", "rtl\u202etxt.exe", "zero\u200bwidth.txt", "c1\x9bcsi.txt",
     "../../escape.txt", "/etc/passwd", "..\\win.txt"],
)
def test_t10_hostile_names_are_escaped(name: str, env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "plain.txt"
    src.write_text("payload")
    # our sender refuses such a -name (tests/e2e/test_cli_edges.py), and says so escaped
    ours = finish(spawn(["send", "-name", name, str(src)], env))
    assert ours.rc == ExitStatus.USAGE, ours.err
    assert not UNSAFE.search(ours.err + ours.out.decode()), repr(ours.err)
    r = _from_go_sender(name, b"payload", env, outdir)
    assert r.rc == 0, r.err
    assert not UNSAFE.search(r.err), repr(r.err)
    saved = list(outdir.iterdir())  # T4: one safe name, inside the output folder
    assert len(saved) == 1 and saved[0].read_text() == "payload"
    assert saved[0].resolve().parent == outdir.resolve()
    assert not list(tmp_path.glob("escape*")) and saved[0].name != "passwd" or saved[0].parent == outdir
    assert not UNSAFE.search(saved[0].name)


def _from_go_sender(name: str, data: bytes, env: dict[str, str], outdir: Path) -> Result:
    """Our receiver's run against the Go CLI sending stdin under -name `name`: Go announces
    any string as given, as a hostile sender could."""
    assert GO_CLI.exists(), "the Go reference CLI is part of the environment"
    go = subprocess.Popen([str(GO_CLI), "send", "-name", name, "-"], env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert go.stdin is not None and go.stderr is not None
        go.stdin.write(data)
        go.stdin.close()
        code = None
        while code is None:  # Go prints the code on stderr
            line = go.stderr.readline()
            assert line, "the Go sender ended without a code"
            code = CODE_RE.search(line.decode(errors="replace"))
        r = finish(spawn(["receive", "-output", str(outdir), code.group(0)], env))
        go.wait(timeout=30)
        return r
    finally:
        kill(go)


def test_t20_code_from_environment_not_argv(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "s.txt"
    src.write_text("secret-free argv")
    sender = spawn(["send", str(src)], env)
    code = read_code(sender)
    receiver = spawn(["receive", "-output", str(outdir)], {**env, "SP2P_CODE": code})
    # the seed is in no process's argv
    seed = code.split("-")[1]
    for pid in (sender.pid, receiver.pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert seed.encode() not in f.read()
    r, s = finish(receiver), finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "s.txt").read_text() == "secret-free argv"
    assert f"SP2P_CODE={code} sp2p receive" in s.err


def test_receive_without_code_or_terminal(env: dict[str, str]) -> None:
    r = finish(spawn(["receive"], env))
    assert r.rc == ExitStatus.USAGE
    assert "SP2P_CODE" in r.err


#: W3: between two of our CLIs (heal announced, as by default) a path silent for HEAL_DEAD_AFTER
#: (8 s) is dead, the longer limits of the original rule (15 s, 120 s) do not apply: a stall this
#: long outlasts it, and no reconnect may hide a path wrongly declared dead
W3_STALL = HEAL_DEAD_AFTER + 2


def _w3_no_heal_needed(*results: Result) -> None:
    for r in results:
        assert "Reconnected" not in r.err, r.err


@pytest.mark.slow
def test_w3_stalled_stdin_does_not_kill_the_transfer(env: dict[str, str], outdir: Path) -> None:
    sender = spawn(["send", "-name", "slow.txt", "-"], env, stdin=subprocess.PIPE)
    code = read_code(sender)
    receiver = spawn(["receive", "-output", str(outdir), code], env)
    assert sender.stdin is not None
    sender.stdin.write(b"first part\n")
    sender.stdin.flush()
    time.sleep(W3_STALL)  # longer than the silence limit of a heartbeating peer
    sender.stdin.write(b"second part\n")
    sender.stdin.close()
    r, s = finish(receiver), finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    _w3_no_heal_needed(s, r)
    assert (outdir / "slow.txt").read_bytes() == b"first part\nsecond part\n"


@pytest.mark.slow
def test_w3_paused_stdout_consumer_does_not_kill_the_transfer(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(24 << 20)
    src.write_bytes(data)
    sender = spawn(["send", "-compress", "0", str(src)], env)
    code = read_code(sender)
    receiver = spawn(["receive", "-stdout", code], env)
    assert receiver.stdout is not None
    first = receiver.stdout.read(1 << 20)
    time.sleep(W3_STALL)  # a `| less` left alone: nothing is read, pipes and sockets fill up
    rest = receiver.stdout.read()
    r, s = finish(receiver), finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    _w3_no_heal_needed(s, r)
    assert first + rest == data


def test_sender_interrupt_cancels_the_receiver(env: dict[str, str], outdir: Path) -> None:
    sender = spawn(["send", "-name", "x.bin", "-compress", "0", "-"], env, stdin=subprocess.PIPE)
    code = read_code(sender)
    receiver = spawn(["receive", "-output", str(outdir), code], env)
    stdin = sender.stdin
    assert stdin is not None
    threading.Thread(target=lambda: _write_quietly(stdin, os.urandom(2 << 20)), daemon=True).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(p.stat().st_size for p in outdir.iterdir()):
        time.sleep(0.05)
    os.killpg(sender.pid, signal.SIGINT)
    s, r = finish(sender), finish(receiver)
    assert s.rc == ExitStatus.INTERRUPTED, s.err
    assert r.rc == ExitStatus.TRANSFER, r.err
    assert "the sender cancelled the transfer" in r.err
    assert list(outdir.iterdir()) == []


def _write_quietly(stream: object, data: bytes) -> None:
    try:
        stream.write(data)  # type: ignore[attr-defined]
        stream.flush()  # type: ignore[attr-defined]
    except OSError:
        pass

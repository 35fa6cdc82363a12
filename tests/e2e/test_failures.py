"""Failures end cleanly: a one-line error, the right exit code, nothing lost, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scripts.benchkit.fixed_level import FIXED_MAIN
from sp2p.status import ExitStatus
from tests.e2e.cut_transfer import TooLate, kill_sender_in_time, pair, until_cut
from tests.e2e.harness import Result, finish, kill, read_code, spawn, transfer
from tests.support.codes import wrong_code
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


def no_traceback(err: str) -> None:
    assert "Traceback" not in err, err
    assert "sp2p: error: " in err


def leftovers(outdir: Path) -> list[str]:
    return [p.name for p in outdir.iterdir() if p.name.startswith(".sp2p")]


def test_malformed_code(env: dict[str, str], outdir: Path) -> None:
    r = finish(spawn(["receive", "-output", str(outdir), "not-a-code"], env))
    assert r.rc == ExitStatus.USAGE
    no_traceback(r.err)
    assert "invalid transfer code" in r.err


def test_unknown_session(env: dict[str, str], outdir: Path) -> None:
    r = finish(spawn(["receive", "-output", str(outdir), "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf"], env))
    assert r.rc == ExitStatus.SIGNALING
    no_traceback(r.err)
    assert "not found" in r.err


def test_wrong_code_fails_key_confirmation(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "secret.txt"
    src.write_text("top secret")
    sender = spawn(["send", str(src)], env)
    wrong = wrong_code(read_code(sender))
    r = finish(spawn(["receive", "-output", str(outdir), wrong], env))
    s = finish(sender)
    assert r.rc == ExitStatus.SECURITY, r.err
    assert s.rc != 0
    no_traceback(r.err)
    assert "wrong code" in r.err
    assert list(outdir.iterdir()) == []


def test_missing_output_directory(env: dict[str, str], tmp_path: Path) -> None:
    r = finish(spawn(["receive", "-output", str(tmp_path / "nope"), "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf"], env))
    assert r.rc == ExitStatus.LOCAL_IO
    no_traceback(r.err)
    assert "does not exist" in r.err


def test_unreadable_input(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "locked.txt"
    src.write_text("x")
    src.chmod(0)
    missing = finish(spawn(["send", str(tmp_path / "missing.txt")], env))
    assert missing.rc == ExitStatus.LOCAL_IO
    no_traceback(missing.err)
    if os.geteuid() == 0:
        return  # root reads anything; the missing file above covers the path
    locked = finish(spawn(["send", str(src)], env))
    assert locked.rc == ExitStatus.LOCAL_IO


def _start_stream(env: dict[str, str], outdir: Path, *, stdout: bool = False
                  ) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    sender = spawn(["send", "-name", "partial.bin", "-compress", "0", "-"], env, stdin=subprocess.PIPE)
    code = read_code(sender)
    args = ["receive", "-stdout", code] if stdout else ["receive", "-output", str(outdir), code]
    receiver = spawn(args, env)
    stdin = sender.stdin
    assert stdin is not None

    def feed() -> None:  # the sender reads stdin only once connected: never block the test on it
        with contextlib.suppress(OSError):
            stdin.write(os.urandom(3 << 20))
            stdin.flush()

    threading.Thread(target=feed, daemon=True).start()
    return sender, receiver


def test_sender_killed_mid_transfer(env: dict[str, str], outdir: Path) -> None:
    sender, receiver = _start_stream(env, outdir)
    eventually(lambda: any(p.stat().st_size > 0 for p in outdir.iterdir()), what="received bytes")
    kill(sender)
    r = finish(receiver, timeout=60)
    assert r.rc != 0
    no_traceback(r.err)
    assert not (outdir / "partial.bin").exists()
    assert leftovers(outdir) == []


def _staging_seen(outdir: Path, placed: Path, receiver: subprocess.Popen[bytes]) -> None:
    """Until the receiver's staging folder shows in `outdir` (polled at 1 ms: the whole
    folder may take under a second).

    Raises:
        TooLate: the folder was placed (as `placed`) before its staging folder was seen.
    """
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(".sp2p-extract") for p in outdir.iterdir()):
        ended = receiver.poll() is not None  # before the look at `placed`: it may place, then end
        if placed.exists():
            raise TooLate("the folder arrived before its staging folder was seen")
        assert not ended, "the receiver ended without a staging folder"
        assert time.monotonic() < deadline, "no staging folder within 30 s"
        time.sleep(0.001)


def test_sender_killed_mid_folder(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "folder"
    src.mkdir()
    files = [src / f"f{i:02}.bin" for i in range(100)]  # the order the sender reads them in (lexical)
    for f in files:
        f.write_bytes(os.urandom(1 << 20))
    # zstd 9 on every chunk, as -compress 9 sends to a far receiver (one on this host gets no
    # zstd): a compressed stream cut short, and a sender slow enough (~1 s here) to catch
    fixed_9 = (*FIXED_MAIN, "9", "--")

    def attempt() -> Result:
        with pair([str(src)], ["-output", str(outdir)], env, send_main=fixed_9) as (sender, receiver):
            _staging_seen(outdir, outdir / src.name, receiver)
            kill_sender_in_time(sender, *files)  # or TooLate: it may have sent every byte
            return finish(receiver, timeout=60)

    r = until_cut(outdir, attempt)
    assert r.rc != 0, r.err
    no_traceback(r.err)
    assert list(outdir.iterdir()) == []  # staging removed, nothing committed


def test_receiver_killed_mid_transfer(env: dict[str, str], outdir: Path) -> None:
    sender, receiver = _start_stream(env, outdir)
    eventually(lambda: any(p.stat().st_size > 0 for p in outdir.iterdir()), what="received bytes")
    kill(receiver)
    assert sender.stdin is not None
    with contextlib.suppress(OSError):
        sender.stdin.close()
    s = finish(sender, timeout=60)
    assert s.rc != 0
    no_traceback(s.err)
    assert "receiver" in s.err or "connection" in s.err


def test_receiver_interrupted_sends_cancel(env: dict[str, str], outdir: Path) -> None:
    sender, receiver = _start_stream(env, outdir)
    eventually(lambda: any(p.stat().st_size > 0 for p in outdir.iterdir()), what="received bytes")
    os.killpg(receiver.pid, signal.SIGINT)
    r = finish(receiver, timeout=30)
    assert r.rc == ExitStatus.INTERRUPTED
    assert leftovers(outdir) == [] and not (outdir / "partial.bin").exists()
    s = finish(sender, timeout=30)
    assert s.rc == ExitStatus.TRANSFER
    assert "cancelled" in s.err


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk(env: dict[str, str], tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        (small / "keep.txt").write_text("precious")
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(4 << 20))
        # declared size above free space: refused before any data flows
        s, r = transfer([str(src)], ["-output", str(small)], env)
        assert r.rc == ExitStatus.LOCAL_IO, r.err
        no_traceback(r.err)
        assert "space" in r.err
        assert s.rc != 0
        # a stream has no declared size: ENOSPC in the middle of writing
        s, r = transfer(["-name", "stream.bin", "-compress", "0", "-"], ["-output", str(small)], env,
                        stdin_data=os.urandom(4 << 20))
        assert r.rc == ExitStatus.LOCAL_IO, r.err
        assert "disk full" in r.err or "space" in r.err
        assert s.rc == ExitStatus.TRANSFER
        assert "receiver error" in s.err
        assert sorted(p.name for p in small.iterdir()) == ["keep.txt"]
        assert (small / "keep.txt").read_text() == "precious"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)

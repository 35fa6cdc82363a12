"""Parallel TCP (client.md §3.11) between two real CLI processes on loopback.

Loopback's RTT is far below 5 ms, so the automatic count is one stream; the tests
force counts with -parallel to exercise the multi-stream link for real.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import finish, kill, read_code, spawn, transfer
from tests.support.files import sha256_file
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e


def _streams_line(err: str) -> str | None:
    lines = [ln.strip() for ln in err.splitlines() if "parallel streams" in ln]
    return lines[0] if lines else None


def test_forced_parallel_carries_a_large_file(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(80 << 20))
    s, r = transfer(["-parallel", "4", "-compress", "0", str(src)], ["-parallel", "4", "-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert _streams_line(s.err) == "Using 4 parallel streams"
    assert _streams_line(r.err) == "Using 4 parallel streams"
    assert sha256_file(outdir / "big.bin") == sha256_file(src)


def test_counts_agree_on_the_smaller_offer(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "small.txt"
    src.write_bytes(b"parallel text line\n" * 300_000)  # compressible: zstd frames on every stream
    s, r = transfer(["-parallel", "6", str(src)], ["-parallel", "2", "-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert _streams_line(s.err) == _streams_line(r.err) == "Using 2 parallel streams"
    assert (outdir / "small.txt").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("size", [0, 1, 256 * 1024, 5 * 256 * 1024 + 7])
def test_fewer_chunks_than_streams(env: dict[str, str], tmp_path: Path, outdir: Path, size: int) -> None:
    src = tmp_path / "tiny.bin"
    src.write_bytes(os.urandom(size))
    s, r = transfer(["-parallel", "5", "-compress", "0", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert _streams_line(r.err) == "Using 5 parallel streams"
    assert (outdir / "tiny.bin").read_bytes() == src.read_bytes()


def test_folder_and_stdin_over_parallel_streams(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "a" / "b").mkdir(parents=True)
    for i in range(12):
        (folder / "a" / f"f{i}.bin").write_bytes(os.urandom(300_000))
    (folder / "a" / "b" / "note.txt").write_text("hello\n")
    s, r = transfer(["-parallel", "3", str(folder)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert _streams_line(r.err) == "Using 3 parallel streams"
    for path in folder.rglob("*"):
        if path.is_file():
            assert (outdir / "tree" / path.relative_to(folder)).read_bytes() == path.read_bytes()

    data = os.urandom(3 << 20)
    s, r = transfer(["-parallel", "3", "-"], ["-stdout"], env, stdin_data=data)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert r.out == data


def test_auto_probes_the_rtt_above_the_threshold(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:  # above the 64 MiB threshold: the sender probes the RTT
        f.truncate(65 << 20)
    s, r = transfer(["-v", "-compress", "0", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    probe = re.search(r"RTT [0-9.]+ ms -> ([1-6]) stream", s.err)
    assert probe is not None, s.err  # the three probes ran and chose a count
    # (loopback asks for one stream, but a loaded machine can answer slowly: no fixed count here)
    assert _streams_line(s.err) == _streams_line(r.err)
    assert (outdir / "big.bin").stat().st_size == 65 << 20


def test_one_side_declining_means_no_negotiation(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(2 << 20))
    s, r = transfer(["-parallel", "4", "-v", str(src)], ["-parallel", "1", "-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert _streams_line(s.err) is None and "RTT" not in s.err
    assert (outdir / "f.bin").read_bytes() == src.read_bytes()


def test_sender_killed_mid_parallel_transfer(env: dict[str, str], outdir: Path) -> None:
    sender = spawn(["send", "-parallel", "4", "-name", "partial.bin", "-compress", "0", "-"], env,
                   stdin=subprocess.PIPE)
    code = read_code(sender)
    receiver = spawn(["receive", "-output", str(outdir), code], env)
    stdin = sender.stdin
    assert stdin is not None
    started = threading.Event()

    def feed() -> None:
        try:
            while True:
                stdin.write(os.urandom(1 << 20))
                stdin.flush()
                started.set()
        except OSError:  # the sender is gone
            return

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    assert started.wait(30)
    wait_until(lambda: any(p.stat().st_size > (2 << 20) for p in outdir.iterdir()), timeout=20, interval=0.1)
    os.killpg(sender.pid, signal.SIGKILL)
    feeder.join(10)  # ends on the broken pipe; only then are the sender's pipes closed under it
    kill(sender)
    r = finish(receiver, timeout=60)
    assert r.rc not in (0, ExitStatus.USAGE)
    assert "Traceback" not in r.err and "sp2p: error: " in r.err
    assert not (outdir / "partial.bin").exists()
    assert [p.name for p in outdir.iterdir()] == []

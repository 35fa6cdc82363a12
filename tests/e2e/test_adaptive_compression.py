"""Adaptive compression (issue 12) stays wire-compatible: a transfer whose Data bodies are stored
frames, fast negative-level frames and level 1-11 frames in turn decodes in our receiver (the
browser's side is tests/web/test_adaptive_browser.py) and in the original Go receiver."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import finish, read_code, spawn, spawn_scripted, transfer
from tests.support.scripted_cli import MIXED_LEVELS

pytestmark = pytest.mark.e2e

GO_CLI = Path("/work/shared/reference/sp2p")
#: every setting of the ladder for -compress 9: stored, fast, 1, 3, 7, 11
ALL_SETTINGS = {"0", "-5", "1", "3", "7", "11"}


def mixed_input(path: Path, chunks: int = 14) -> Path:
    """Text with random stretches, so zstd is announced and some chunks do not shrink."""
    text = b"".join(b"%06d the quick brown fox jumps over the lazy dog %d\n" % (i, i * 7) for i in range(5000))
    with path.open("wb") as f:
        for k in range(chunks):
            f.write(os.urandom(256 * 1024) if k % 4 == 3 else (text * 2)[: 256 * 1024])
        f.write(b"tail")
    return path


def used_settings(err: str) -> set[str]:
    return {line.split()[1] for line in err.splitlines() if line.startswith("zstd-setting ")}


def test_every_setting_in_one_transfer_decodes_in_our_receiver(
    env: dict[str, str], tmp_path: Path, outdir: Path
) -> None:
    src = mixed_input(tmp_path / "mixed.bin")
    sender = spawn_scripted(["send", "-compress", "9", str(src)], env, script=MIXED_LEVELS)
    try:
        r = finish(spawn(["receive", "-output", str(outdir), read_code(sender)], env))
        s = finish(sender)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert used_settings(s.err) == ALL_SETTINGS
    got = (outdir / "mixed.bin").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_every_setting_in_one_transfer_decodes_in_the_go_receiver(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert GO_CLI.exists(), "the Go reference CLI is part of the environment"
    src = mixed_input(tmp_path / "mixed.bin")
    go_dir = tmp_path / "go-out"
    go_dir.mkdir()
    sender = spawn_scripted(["send", "-compress", "9", str(src)], env, script=MIXED_LEVELS)
    try:
        go = subprocess.run([str(GO_CLI), "receive", read_code(sender)], env=env, cwd=go_dir,
                            capture_output=True, timeout=120, check=False)
        s = finish(sender)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert (s.rc, go.returncode) == (0, 0), s.err + go.stderr.decode(errors="replace")
    assert used_settings(s.err) == ALL_SETTINGS
    got = (go_dir / "mixed.bin").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_a_receiver_on_this_host_gets_no_zstd(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """Over loopback the link is a memory copy: no zstd level pays, and even stored frames cost a
    copy each side and the receiver's zstd import, so the sender does what -compress 0 does."""
    src = mixed_input(tmp_path / "mixed.bin")
    s, r = transfer(["-v", str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "the receiver is on this host: sending without zstd" in s.err
    assert (outdir / "mixed.bin").read_bytes() == src.read_bytes()

"""The progress renderer through the real CLI (issue 14 item 5): on a pseudo-terminal it ends at
100 % with the final size and rate, redraws at most 10 times a second, and shows bytes and rate
without a percentage for a stream; in a log it prints a few milestone lines; IEC units; the code
and URL appear once on a terminal."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.e2e.harness import CODE_RE, finish, read_code, spawn
from tests.e2e.ptyrun import finish_tty, spawn_tty

pytestmark = pytest.mark.e2e

REDRAW = "\r\x1b[2K"


def _frames(screen: str) -> list[str]:
    """The redrawn progress frames, in order, as the terminal received them."""
    return [part.split("\r\n")[0] for part in screen.split(REDRAW)[1:] if part.strip()]


def _code_from_tty(child: pexpect.spawn) -> str:
    child.expect(r"Terminal:\s+sp2p receive (?:-server \S+ )?(" + CODE_RE.pattern + ")")
    return child.match.group(1)


def test_tty_bar_ends_at_100_with_size_and_rate(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "five.bin"
    src.write_bytes(os.urandom(5 << 20))
    sender = spawn_tty(["send", "-compress", "0", str(src)], env)
    code = _code_from_tty(sender)
    receiver = spawn_tty(["receive", "-yes", "-output", str(outdir), code], env)
    rc_r, screen_r = finish_tty(receiver)
    rc_s, screen_s = finish_tty(sender)
    assert (rc_s, rc_r) == (0, 0), screen_s + screen_r
    for screen in (screen_r, screen_s):
        frames = _frames(screen)
        assert frames, screen
        last = frames[-1]
        assert "[" + "#" * 32 + "] 100%" in last, last
        assert "5.0 MiB of 5.0 MiB" in last and re.search(r"\d MiB/s  in ", last), last
        # the final frame stays: the completion lines come after it, not over a stale one
        assert screen.index(last) < screen.index("Transfer complete")
        assert " MB" not in screen and " KB" not in screen


def test_tty_stream_shows_bytes_and_rate_at_most_10_redraws_a_second(
    env: dict[str, str], outdir: Path
) -> None:
    feeder = (f"{shlex.quote(sys.executable)} -c 'import os,sys,time\n"
              "for _ in range(60):\n"
              "    sys.stdout.buffer.write(os.urandom(65536)); sys.stdout.flush(); time.sleep(0.05)'")
    cmd = f"{feeder} | {shlex.quote(sys.executable)} -m sp2p send -compress 0 -name slow.bin -"
    sender = pexpect.spawn("bash", ["-c", cmd], env=env, encoding="utf-8", timeout=60,
                           dimensions=(40, 120))
    code = _code_from_tty(sender)
    head = sender.before or ""
    t_start = time.monotonic()  # no byte is sent before the receiver joins
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    rc, screen = finish_tty(sender)
    duration = time.monotonic() - t_start
    assert (rc, r.rc) == (0, 0), screen + r.err
    frames = _frames(screen)
    assert "slow.bin (size not known in advance)" in head and "0 B" not in head + screen
    assert frames and all("%" not in f and "ETA" not in f for f in frames), frames
    assert re.search(r"Sending:  3\.8 MiB  [\d.]+ [KM]iB/s  in ", frames[-1]), frames[-1]
    # 60 pieces over 3 s or more (under load, more): unthrottled that would be a frame per
    # piece and more; throttled, at most 10 a second of the whole transfer
    assert len(frames) <= 10 * duration + 2, (len(frames), duration)
    assert (outdir / "slow.bin").stat().st_size == 60 * 65536


def test_log_gets_milestones_not_frames(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "logged.bin"
    src.write_bytes(os.urandom(8 << 20))
    sender = spawn(["send", "-compress", "0", str(src)], env)
    code = read_code(sender)
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    for err, verb in ((r.err, "Receiving"), (s.err, "Sending")):
        assert "\r" not in err and "\x1b" not in err
        lines = [line.strip() for line in err.splitlines() if line.strip().startswith(f"{verb}: ")
                 and "%" in line]
        assert 1 <= len(lines) <= 4, lines  # 25/50/75 when seen, then the final 100 %
        assert re.fullmatch(rf"{verb}: 100%  8\.0 MiB of 8\.0 MiB  [\d.]+ [KMG]iB/s  in \S+", lines[-1])


def test_code_and_url_appear_once_on_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "once.txt"
    src.write_text("x")
    sender = spawn_tty(["send", str(src)], env)
    code = _code_from_tty(sender)
    sender.expect("SP2P_CODE=")
    sender.expect(r"\n\s*\r?\n")
    screen = (sender.before or "")
    sender.terminate(force=True)
    # the share URL once (the Browser line), never a bare copy of the code or the URL
    whole = [line.strip() for line in screen.splitlines()]
    assert code not in whole and not any(line.endswith(f"/r#{code}") and "Browser" not in line
                                         for line in whole), screen

"""Spawn real `sp2p send` / `sp2p receive` processes against a real sp2p-server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sp2p.proto.codes import CODE_PATTERN

CODE_RE = CODE_PATTERN
REPO = Path(__file__).resolve().parents[2]


def cli_env(server_url: str, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    env.update(
        {
            "SP2P_SERVER": server_url,
            "SP2P_ALLOW_LOOPBACK": "1",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra or {})
    return env


def spawn(args: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None,
          stdin: int | None = subprocess.DEVNULL, main: Sequence[str] = ("-m", "sp2p")) -> subprocess.Popen[bytes]:
    """`python MAIN ARGS`: the CLI, or a wrapper around it (e.g. scripts/benchkit/fixed_level.py)."""
    return subprocess.Popen(
        [sys.executable, *main, *args],
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def spawn_scripted(args: Sequence[str], env: Mapping[str, str], *, script: str | None = None,
                   window: float | None = None, dead_after: float | None = None,
                   heartbeat: float | None = None, first_attempt: float | None = None,
                   stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """The real CLI with scaled liveness limits, a shorter first connection attempt and/or a
    hostile scripted transfer (tests/support/scripted_cli.py)."""
    opts = [*(["--script", script] if script else []),
            *(["--window", str(window)] if window is not None else []),
            *(["--dead-after", str(dead_after)] if dead_after is not None else []),
            *(["--heartbeat", str(heartbeat)] if heartbeat is not None else []),
            *(["--first-attempt", str(first_attempt)] if first_attempt is not None else [])]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_cli", *opts, "--", *args],
        env=dict(env), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


@dataclass
class Result:
    rc: int
    out: bytes
    err: str


def finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> Result:
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # communicate() would flush it
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"process timed out:\n{err.decode(errors='replace')}") from None
    return Result(proc.returncode, out, err.decode(errors="replace"))


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group, reap it and close its pipes (none left to the GC)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):  # flushing stdin into a dead pipe: closed all the same
                stream.close()


def read_code(proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The sender prints the code as the first line of stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line or proc.poll() is not None:
            break
    match = CODE_RE.search(line.decode(errors="replace"))
    if not match:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr and proc.poll() is not None else ""
        raise AssertionError(f"no transfer code from the sender: {line!r} {err}")
    return match.group(0)


def stderr_until(proc: subprocess.Popen[bytes], text: str) -> list[str]:
    """`proc`'s stderr lines up to the first that holds `text`. Its stderr ending first fails
    with what it wrote (a loop on readline would spin on EOF until the suite's timeout)."""
    assert proc.stderr is not None
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        raw = proc.stderr.readline()
        if not raw:
            raise AssertionError(f"stderr ended before {text!r}:\n{''.join(lines)}")
        lines.append(raw.decode(errors="replace"))
    return lines


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.write(data)
        proc.stdin.close()


def transfer(
    send_args: Sequence[str],
    recv_args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    stdin_data: bytes | None = None,
    recv_env: Mapping[str, str] | None = None,
    send_main: Sequence[str] = ("-m", "sp2p"),
) -> tuple[Result, Result]:
    """Run a sender (the CLI, or send_main wrapping it) and a receiver to the end; the code is
    appended to recv_args."""
    sender = spawn(["send", *send_args], env, cwd=cwd, main=send_main,
                   stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
    try:
        if stdin_data is not None:
            # the sender reads stdin only once connected (or to sample it): feed it on the side
            threading.Thread(target=_feed, args=(sender, stdin_data), daemon=True).start()
        code = read_code(sender)
        receiver = spawn(["receive", *recv_args, code], recv_env or env, cwd=cwd)
        r = finish(receiver)
        s = finish(sender)
        return s, r
    finally:
        if sender.poll() is None:
            kill(sender)

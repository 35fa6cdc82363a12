"""Run the real CLI on a pseudo-terminal (pexpect), as a user at a terminal would."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pexpect


def spawn_tty(args: Sequence[str], env: Mapping[str, str], *, cwd: Path | None = None,
              timeout: float = 60, cols: int = 100) -> pexpect.spawn:
    """`sp2p ARGS` with the pty as its controlling terminal, stdin, stdout and stderr."""
    child = pexpect.spawn(
        sys.executable, ["-m", "sp2p", *args], env=dict(env), cwd=str(cwd) if cwd else None,
        timeout=timeout, encoding="utf-8", codec_errors="replace", dimensions=(40, cols),
    )
    return child


def finish_tty(child: pexpect.spawn, timeout: float = 120) -> tuple[int, str]:
    """Wait for the end; (exit status, everything it wrote to the terminal since the last expect)."""
    child.expect(pexpect.EOF, timeout=timeout)
    child.close()
    rc = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return rc, child.before or ""

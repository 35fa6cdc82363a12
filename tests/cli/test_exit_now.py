"""sp2p.cli.exit_now: the command skips the interpreter's teardown (issue 12) but keeps what a
normal exit does that anyone can see: the status, atexit handlers, flushed stdout and stderr,
and waiting for a non-daemon thread. Each case in a fresh interpreter, as the command runs."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.harness import REPO

_PRELUDE = "import atexit, sys, threading, time\nfrom sp2p.cli import exit_now\n"


def _run(body: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffers as for a user
    return subprocess.run([sys.executable, "-c", _PRELUDE + body], capture_output=True, cwd=REPO, env=env,
                          timeout=60)


def test_status_atexit_and_buffered_output_as_a_normal_exit() -> None:
    """stdout is a pipe here, so the unterminated lines sit in Python's buffers until the flush."""
    body = (
        "atexit.register(lambda: sys.stdout.write('atexit ran;'))\n"
        "sys.stdout.write('text;')\n"
        "sys.stdout.buffer.write(b'bytes;')\n"
        "sys.stderr.write('err')\n"
    )
    fast, normal = _run(body + "sys.exit(exit_now(3))\n"), _run(body + "sys.exit(3)\n")
    assert fast.returncode == normal.returncode == 3
    assert fast.stdout == normal.stdout
    assert sorted(fast.stdout.split(b";")) == [b"", b"atexit ran", b"bytes", b"text"]
    assert fast.stderr == normal.stderr == b"err"


def test_the_teardown_is_skipped() -> None:
    """A finalizer that only the interpreter's teardown would run shows which exit was taken."""
    out = _run(
        "class Noisy:\n"
        "    def __del__(self):\n"
        "        sys.stderr.write('teardown ran')\n"
        "keep = Noisy()\n"
        "sys.exit(exit_now(0))\n"
    )
    assert out.returncode == 0
    assert out.stderr == b""


def test_a_live_non_daemon_thread_gets_the_normal_exit() -> None:
    out = _run(
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    sys.stdout.write('thread finished')\n"
        "threading.Thread(target=late).start()\n"
        "sys.exit(exit_now(4))\n"
    )
    assert out.returncode == 4
    assert out.stdout == b"thread finished"


def test_a_stdout_that_cannot_be_flushed_reports_as_before() -> None:
    """A closed stdout: the normal exit's own report and status (120), not a silent 0."""
    out = _run(
        "import os\n"
        "sys.stdout.write('lost')\n"
        "os.close(1)\n"
        "sys.exit(exit_now(0))\n"
    )
    assert out.returncode == 120
    assert b"Exception ignored" in out.stderr

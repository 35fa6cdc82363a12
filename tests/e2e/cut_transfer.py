"""A 200 MiB transfer between real CLIs, and what its receiver leaves in the output folder.

Shared by test_resume.py (cut by SIGKILL, then re-run) and test_resume_heal.py (cut on the
wire, healed in the same run); their big_file and src fixtures are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.harness import CODE_RE, read_code, spawn

SIZE = 200 * 1024 * 1024
MiB = 1024 * 1024


def write_big_file(path: Path) -> Path:
    """SIZE bytes, incompressible (the wire carries what the file holds), each MiB numbered."""
    block = os.urandom(MiB)
    with path.open("wb") as f:
        for i in range(SIZE // MiB):
            f.write(i.to_bytes(4, "big") + block[4:])
    return path


def partials(outdir: Path) -> list[Path]:
    """The data files (not the records, nor a record being replaced)."""
    return sorted(p for p in outdir.iterdir() if re.fullmatch(r"\.sp2p-partial-[0-9a-f]{32}", p.name))


def leftovers(outdir: Path) -> list[str]:
    return sorted(p.name for p in outdir.iterdir() if p.name.startswith(".sp2p"))


def read_go_code(proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """The Go sender shows its code on stderr, between spinner redraws (no newline to wait for)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            seen += os.read(fd, 65536)
        if match := CODE_RE.search(seen.decode(errors="replace")):
            os.set_blocking(fd, True)
            return match.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no code from the Go sender: {seen[-500:]!r}")


@contextlib.contextmanager
def pair(send_args: list[str], recv_args: list[str], env: dict[str, str],
         send_cmd: list[str] | None = None) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    sender = (
        spawn(["send", *send_args], env)
        if send_cmd is None
        else subprocess.Popen([*send_cmd, *send_args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
    )
    receiver = None
    try:
        code = read_code(sender) if send_cmd is None else read_go_code(sender)
        receiver = spawn(["receive", *recv_args, code], env)
        yield sender, receiver
    finally:
        for proc in (sender, receiver):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            if proc is not None:
                proc.communicate()

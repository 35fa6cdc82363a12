"""A 200 MiB transfer between real CLIs, and what its receiver leaves in the output folder.

Shared by test_resume.py (cut by SIGKILL, then re-run) and test_resume_heal.py (cut on the
wire, healed in the same run); their big_file and src fixtures are in conftest.py. The cut
itself (stopped, *_in_time, until_cut) also serves test_failures.py's folder cut short.

A test polls the output folder and cuts once the file holds what it wants, but on a loaded
machine it may not be scheduled again before the transfer is over (on loopback 200 MiB take
about half a second). So a cut stops its victim (SIGSTOP) and kills it only if, stopped, it
provably cannot finish any more; else the attempt is `TooLate` and `until_cut` runs it again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tests.e2e.harness import CODE_RE, read_code, spawn
from tests.support.procs import read_positions, wait_stopped

SIZE = 200 * 1024 * 1024
MiB = 1024 * 1024
#: attempts of a cut before the test gives up
CUT_ATTEMPTS = 3

T = TypeVar("T")


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


def holds(outdir: Path, pattern: str, at_least: int) -> bool:
    """Whether a file in `outdir` matching the glob `pattern` holds `at_least` bytes."""
    for p in outdir.glob(pattern):
        with contextlib.suppress(FileNotFoundError):  # placed under its final name meanwhile
            if p.is_file() and p.stat().st_size >= at_least:
                return True
    return False


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
         send_cmd: list[str] | None = None, send_main: Sequence[str] = ("-m", "sp2p"),
         ) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """Our sender (or `send_main` wrapping it, or the Go CLI `send_cmd`) and our receiver."""
    sender = (
        spawn(["send", *send_args], env, main=send_main)
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


class TooLate(Exception):
    """The transfer got past the point to cut at before the test could act: it may finish."""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGSTOP `proc` and wait until none of its threads runs: what we read of it now holds."""
    with contextlib.suppress(ProcessLookupError):  # reaped already: nothing left to stop
        os.kill(proc.pid, signal.SIGSTOP)
        wait_stopped(proc.pid)


@contextlib.contextmanager
def stopped(*procs: subprocess.Popen[bytes]) -> Iterator[None]:
    """The processes stopped for the block (SIGCONT after it): a transfer the test caught at
    the point it wanted cannot go on while the test looks at it or acts."""
    try:
        for proc in procs:
            _stop(proc)
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)


def short_of_end(sender: subprocess.Popen[bytes], *sources: Path) -> bool:
    """Whether the stopped `sender` has not read all of `sources` yet, so cannot have sent it.

    It reads them one at a time in the order given (a folder's files in its lexical walk
    order): one held open short of its end, or any held open before the last, leaves bytes
    unread. None held open proves nothing (between two files, or done).
    """
    last = len(sources) - 1
    return any(pos < source.stat().st_size or i < last
               for i, source in enumerate(sources) for pos in read_positions(sender.pid, source))


def kill_sender_in_time(sender: subprocess.Popen[bytes], *sources: Path) -> None:
    """SIGKILL `sender` while it has not read all of `sources` (see short_of_end) yet: it
    cannot have sent the last bytes, so the receiver never completes the file or folder.

    Raises:
        TooLate: the sender had read all of `sources` (or was gone) when it stopped.
    """
    _stop(sender)
    if not short_of_end(sender, *sources):
        raise TooLate(f"the sender had read all of {sources[-1].name} before the cut")
    os.killpg(sender.pid, signal.SIGKILL)
    sender.wait()


def kill_receiver_in_time(receiver: subprocess.Popen[bytes], growing: Path) -> None:
    """SIGKILL `receiver` while `growing` (its partial or temp file) is still not in place: a
    killed receiver renames nothing, so the file stays where it is.

    Raises:
        TooLate: the receiver had already placed the file (or was gone) when it stopped.
    """
    _stop(receiver)
    if receiver.poll() is not None or not growing.exists():
        raise TooLate(f"the receiver had finished {growing.name} before the cut")
    os.killpg(receiver.pid, signal.SIGKILL)
    receiver.wait()


def until_cut(outdir: Path, attempt: Callable[[], T]) -> T:
    """`attempt` (a transfer it cuts, started and ended inside it) again in the emptied
    `outdir` while the transfer outruns the cut."""
    for n in range(CUT_ATTEMPTS):
        try:
            return attempt()
        except TooLate as exc:
            print(f"attempt {n + 1}: {exc}; again in an empty folder")
            for p in outdir.iterdir():
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    raise AssertionError(f"the transfer outran the cut {CUT_ATTEMPTS} times in a row")

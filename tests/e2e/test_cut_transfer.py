"""cut_transfer's proof that a stopped sender cannot have sent everything, against a real
process holding real files open where a sender reading them in order would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cut_transfer import TooLate, kill_sender_in_time, short_of_end

#: reads each PATH:N argument's first N bytes in turn and keeps only the last one open
_READER = """
import os, sys
for arg in sys.argv[1:]:
    path, n = arg.rsplit(":", 1)
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, int(n))
    if arg != sys.argv[-1]:
        os.close(fd)
print("ready", flush=True)
sys.stdin.read()
"""

SIZE = 1000


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    files = [tmp_path / name for name in ("a.bin", "b.bin", "c.bin")]
    for f in files:
        f.write_bytes(os.urandom(SIZE))
    return files


@pytest.fixture
def readers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The readers a test starts, killed after it (stopped or not)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def start(procs: list[subprocess.Popen[bytes]], sources: list[Path], *reads: tuple[int, int]
          ) -> subprocess.Popen[bytes]:
    """A reader idle where `reads` ((index in sources, bytes read) in order) leave it."""
    proc = subprocess.Popen([sys.executable, "-c", _READER, *(f"{sources[i]}:{n}" for i, n in reads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.mark.parametrize(("reads", "unread"), [
    (((0, SIZE),), True),                          # a read to its end, b and c not opened yet
    (((0, SIZE), (1, SIZE), (2, SIZE - 1)), True),  # the last byte of c still unread
    (((0, SIZE), (1, SIZE), (2, SIZE)), False),     # c read to its end: everything may be out
])
def test_a_held_file_short_of_its_end_or_before_the_last_leaves_bytes_unread(
        reads: tuple[tuple[int, int], ...], unread: bool, sources: list[Path],
        readers: list[subprocess.Popen[bytes]]) -> None:
    proc = start(readers, sources, *reads)
    assert short_of_end(proc, *sources) is unread


def test_no_file_held_proves_nothing(sources: list[Path], readers: list[subprocess.Popen[bytes]]) -> None:
    proc = start(readers, sources, (0, SIZE))
    assert short_of_end(proc, sources[0]) is False  # one source: read to its end
    assert short_of_end(proc, sources[1], sources[2]) is False  # between files, or done


def test_the_sender_is_killed_only_short_of_the_end(sources: list[Path],
                                                    readers: list[subprocess.Popen[bytes]]) -> None:
    done = start(readers, sources, (0, SIZE), (1, SIZE), (2, SIZE))
    with pytest.raises(TooLate, match="c.bin"):
        kill_sender_in_time(done, *sources)
    assert done.poll() is None  # left stopped, for the caller to end
    cut = start(readers, sources, (0, SIZE), (1, SIZE // 2))
    kill_sender_in_time(cut, *sources)
    assert cut.returncode == -signal.SIGKILL

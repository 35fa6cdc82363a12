"""Healing with real processes (docs/protocol-extensions.md §2): a connection cut on the wire
(`ss -K`) mid-transfer reconnects within the same run and the transfer completes: a file
resumes into the receiver's partial, a folder or a stream continues from the sender's window.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cut_transfer import SIZE, TooLate, holds, leftovers, pair, until_cut
from tests.e2e.harness import Result, finish, kill, read_code, spawn
from tests.e2e.links import cut_all, server_port
from tests.support.files import sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_cut_connection_heals_itself(src: Path, outdir: Path, env: dict[str, str], sp2p_server) -> None:
    port = server_port(sp2p_server)
    # over the host's own non-loopback address: `ss -K` does not destroy loopback connections here
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}

    def attempt() -> tuple[Result, Result, list[tuple[str, str]]]:
        with pair([str(src), "-transport", "tcp", "-debug"], ["-output", str(outdir), "-transport", "tcp", "-debug"],
                  env) as (sender, receiver):
            _wait_grown(outdir, ".sp2p-partial-*", SIZE // 8, (sender, receiver))
            links = cut_all(sender, receiver, port, unread=src)
            r = finish(receiver)  # the receiver first: its -debug stderr must not fill the pipe
            return finish(sender), r, links

    s, r, links = until_cut(outdir, attempt)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Reconnected via" in s.err and "Reconnected via" in r.err, (links, s.err + r.err)
    assert "Resuming at" in r.err
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def _wait_grown(outdir: Path, pattern: str, at_least: int, procs: tuple[subprocess.Popen[bytes], ...],
                grown: Callable[[], bool] | None = None) -> None:
    """Until a file matching `pattern` (or `grown()`) holds `at_least` bytes.

    Raises:
        TooLate: the transfer ended first.
    """
    deadline = time.monotonic() + 60
    while not (grown() if grown is not None else holds(outdir, pattern, at_least)):
        assert time.monotonic() < deadline
        if any(p.poll() is not None for p in procs):
            raise TooLate("the transfer ended before it was seen where the test cuts it")
        time.sleep(0.002)


@pytest.mark.parametrize("kind", ["folder", "stdin", "to-stdout"])
def test_cut_connection_heals_folders_and_streams(kind: str, big_file: Path, tmp_path: Path, outdir: Path,
                                                  env: dict[str, str], sp2p_server) -> None:
    """protocol-extensions §2.6: no partial to resume into, the sender replays from its window."""
    port = server_port(sp2p_server)
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    shutil.copyfile(big_file, folder / "sub" / "big.bin")
    (folder / "small.txt").write_text("hello\n")
    tcp = ["-transport", "tcp", "-debug"]
    send_args = [*tcp, str(folder)]
    recv_args = [*tcp, "-output", str(outdir)]
    watch, stdout_sink, unread = ".sp2p-extract-*/tree/sub/big.bin", None, folder / "sub" / "big.bin"
    if kind == "stdin":
        send_args, watch, unread = [*tcp, "-name", "piped.bin", "-"], ".sp2p-recv-*", big_file
    elif kind == "to-stdout":
        send_args, unread = [*tcp, str(big_file)], big_file
        stdout_sink = tmp_path / "stdout.bin"
        recv_args = [*tcp, "-stdout"]

    def attempt() -> tuple[Result, Result]:
        procs: list[subprocess.Popen[bytes]] = []
        # the stdin kind's sender reads this as its stdin: the offset says how far it read
        with big_file.open("rb") as piped:
            try:
                sender = spawn(["send", *send_args], env,
                               stdin=piped.fileno() if kind == "stdin" else subprocess.DEVNULL)
                procs.append(sender)
                code = read_code(sender)
                if stdout_sink is not None:
                    with stdout_sink.open("wb") as out:
                        receiver = subprocess.Popen([sys.executable, "-m", "sp2p", "receive", *recv_args, code],
                                                    env=env, stdout=out, stderr=subprocess.PIPE,
                                                    start_new_session=True)
                else:
                    receiver = spawn(["receive", *recv_args, code], env)
                procs.append(receiver)
                _wait_grown(outdir, watch, SIZE // 4, (sender, receiver),
                            grown=None if stdout_sink is None else lambda: stdout_sink.stat().st_size >= SIZE // 4)
                cut_all(sender, receiver, port, unread=unread)
                r = finish(receiver)
                return finish(sender), r
            finally:
                for proc in procs:
                    kill(proc)

    s, r = until_cut(outdir, attempt)
    detail = s.err + r.err
    assert (s.rc, r.rc) == (0, 0), detail
    assert "Reconnected via" in s.err and "Reconnected via" in r.err, detail
    assert "Resuming at" not in r.err  # no partial: the stream continued from the sender's window
    got = {"folder": outdir / "tree" / "sub" / "big.bin", "stdin": outdir / "piped.bin", "to-stdout": stdout_sink}[kind]
    assert got is not None and sha256_file(got) == sha256_file(big_file), detail
    if kind == "folder":
        assert (outdir / "tree" / "small.txt").read_text() == "hello\n"
    assert leftovers(outdir) == []

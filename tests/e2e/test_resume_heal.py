"""Healing with real processes (docs/protocol-extensions.md §2): a connection cut on the wire
(`ss -K`) mid-transfer reconnects within the same run and the transfer completes: a file
resumes into the receiver's partial, a folder or a stream continues from the sender's window.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cut_transfer import SIZE, leftovers, pair, partials
from tests.e2e.harness import finish, read_code, spawn
from tests.e2e.links import cut_all, server_port
from tests.support.files import sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_cut_connection_heals_itself(src: Path, outdir: Path, env: dict[str, str], sp2p_server) -> None:
    port = server_port(sp2p_server)
    # over the host's own non-loopback address: `ss -K` does not destroy loopback connections here
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}
    with pair([str(src), "-transport", "tcp", "-debug"], ["-output", str(outdir), "-transport", "tcp", "-debug"], env) as (
        sender, receiver,
    ):
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > SIZE // 8 for p in partials(outdir)):
            assert time.monotonic() < deadline and receiver.poll() is None
            time.sleep(0.002)
        links = cut_all(sender, receiver, port)
        r = finish(receiver)
        s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Reconnected via" in s.err and "Reconnected via" in r.err, (links, s.err + r.err)
    assert "Resuming at" in r.err
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def _grown(outdir: Path, pattern: str, at_least: int) -> bool:
    for p in outdir.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and p.stat().st_size >= at_least:
                return True
    return False


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
    stdin: int | None = subprocess.DEVNULL
    send_args = [*tcp, str(folder)]
    recv_args = [*tcp, "-output", str(outdir)]
    watch, stdout_sink = ".sp2p-extract-*/tree/sub/big.bin", None
    if kind == "stdin":
        source = big_file.open("rb")
        stdin = source.fileno()
        send_args, watch = [*tcp, "-name", "piped.bin", "-"], ".sp2p-recv-*"
    elif kind == "to-stdout":
        send_args = [*tcp, str(big_file)]
        stdout_sink = tmp_path / "stdout.bin"
        recv_args = [*tcp, "-stdout"]
    sender = spawn(["send", *send_args], env, stdin=stdin)
    receiver = None
    try:
        code = read_code(sender)
        if stdout_sink is not None:
            with stdout_sink.open("wb") as out:
                receiver = subprocess.Popen([sys.executable, "-m", "sp2p", "receive", *recv_args, code],
                                            env=env, stdout=out, stderr=subprocess.PIPE, start_new_session=True)
        else:
            receiver = spawn(["receive", *recv_args, code], env)
        deadline = time.monotonic() + 60
        while not (stdout_sink.stat().st_size >= SIZE // 4 if stdout_sink is not None
                   else _grown(outdir, watch, SIZE // 4)):
            assert time.monotonic() < deadline and receiver.poll() is None and sender.poll() is None
            time.sleep(0.002)
        cut_all(sender, receiver, port)
        r = finish(receiver)
        s = finish(sender)
    finally:
        for proc in (sender, receiver):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        if kind == "stdin":
            source.close()
    detail = s.err + r.err
    assert (s.rc, r.rc) == (0, 0), detail
    assert "Reconnected via" in s.err and "Reconnected via" in r.err, detail
    assert "Resuming at" not in r.err  # no partial: the stream continued from the sender's window
    got = {"folder": outdir / "tree" / "sub" / "big.bin", "stdin": outdir / "piped.bin", "to-stdout": stdout_sink}[kind]
    assert got is not None and sha256_file(got) == sha256_file(big_file), detail
    if kind == "folder":
        assert (outdir / "tree" / "small.txt").read_text() == "hello\n"
    assert leftovers(outdir) == []

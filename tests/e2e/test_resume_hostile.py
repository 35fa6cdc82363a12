"""Hostile peers of the resume and heal extensions, as real processes through the real server
(docs/protocol-extensions.md §1.7, §2; the hostile side is tests/support/scripted_resume.py).

The honest side must end with a one-line error and the right exit status, never extend or
write what it did not verify, and leave nothing under a final name or outside its folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.cut_transfer import TooLate, holds, until_cut
from tests.e2e.harness import Result, finish, kill, read_code, spawn
from tests.e2e.links import cut_all, server_port

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def hostile(case: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_resume", case, "--", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )


@contextmanager
def pair(sender: subprocess.Popen[bytes], make_receiver: object) -> Iterator[subprocess.Popen[bytes]]:
    receiver = None
    try:
        assert callable(make_receiver)
        receiver = make_receiver(read_code(sender))
        yield receiver
    finally:
        for proc in (receiver, sender):
            if proc is not None:
                kill(proc)


def one_line_error(r: Result, status: ExitStatus, text: str) -> None:
    assert r.rc == status, r.err
    assert "Traceback" not in r.err, r.err
    assert r.err.count("sp2p: error: ") == 1, r.err
    assert text in r.err, r.err


def nothing_final(outdir: Path, *names: str) -> None:
    """No file under a final name, no temp or staging left (a kept partial is allowed)."""
    left = sorted(p.name for p in outdir.iterdir())
    assert all(p.startswith(".sp2p-partial-") for p in left), left
    for name in names:
        assert not (outdir / name).exists()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "doc.bin"
    path.write_bytes(os.urandom(3 * MiB))
    return path


# -- hostile receivers against our sender --------------------------------------------------------
def test_offer_with_a_wrong_prefix_hash_gets_everything_from_zero(src: Path, outdir: Path,
                                                                   env: dict[str, str]) -> None:
    sender = spawn(["send", str(src)], env)
    with pair(sender, lambda code: hostile("offer-wrong-hash", ["receive", "-output", str(outdir), code], env)) as r:
        evil = finish(r)
        s = finish(sender)
    assert "script: accept 0" in evil.err, evil.err  # never the offered half
    one_line_error(s, ExitStatus.TRANSFER, "the receiver cancelled the transfer")
    assert "Resuming" not in s.err


def test_offer_past_the_announced_size_fails_the_sender(src: Path, outdir: Path, env: dict[str, str]) -> None:
    sender = spawn(["send", str(src)], env)
    with pair(sender, lambda code: hostile("offer-past-size", ["receive", "-output", str(outdir), code], env)):
        s = finish(sender)
    one_line_error(s, ExitStatus.TRANSFER, f"resume offer at byte {3 * MiB + 1} is past the announced size {3 * MiB}")


@pytest.mark.parametrize("case", ["offer-on-folder", "offer-unannounced"])
def test_offer_where_none_may_come_fails_the_sender(case: str, src: Path, tmp_path: Path, outdir: Path,
                                                     env: dict[str, str]) -> None:
    what = src
    if case == "offer-on-folder":
        what = tmp_path / "tree"
        what.mkdir()
        shutil.copyfile(src, what / "a.bin")
    sender = spawn(["send", str(what)], env)
    with pair(sender, lambda code: hostile(case, ["receive", "-output", str(outdir), code], env)):
        s = finish(sender)
    one_line_error(s, ExitStatus.TRANSFER, "unexpected message type 0x21")


# -- hostile senders against our receiver --------------------------------------------------------
def test_resume_source_from_a_sender_that_never_announced_it(outdir: Path, env: dict[str, str]) -> None:
    sender = hostile("source-unannounced", ["send", "-name", "evil.bin", "-"], env)
    with pair(sender, lambda code: spawn(["receive", "-output", str(outdir), code], env)) as receiver:
        r = finish(receiver)
    one_line_error(r, ExitStatus.TRANSFER, "unexpected message type 0x20")
    nothing_final(outdir, "evil.bin")
    assert list(outdir.iterdir()) == []


def test_accept_at_an_offset_never_offered_writes_nothing(src: Path, outdir: Path, env: dict[str, str]) -> None:
    sender = hostile("accept-other-offset", ["send", str(src)], env)
    with pair(sender, lambda code: spawn(["receive", "-output", str(outdir), code], env)) as receiver:
        r = finish(receiver)
    one_line_error(r, ExitStatus.TRANSFER, "resume accepted at byte 1, but we offered 0")
    nothing_final(outdir, src.name)
    assert list(outdir.iterdir()) == []  # nothing arrived, so no partial is kept either


# -- heal: a hostile peer in a reconnect ---------------------------------------------------------
def _cut_when(outdir: Path, at_least: int, procs: tuple[subprocess.Popen[bytes], ...], port: int,
              tree: Path) -> None:
    """Cut (sender, receiver) once tree/big.bin is `at_least` bytes into its extraction.

    Raises:
        TooLate: the transfer ended first, or the sender had read all of big.bin by the cut.
    """
    deadline = time.monotonic() + 60
    while not holds(outdir, ".sp2p-extract-*/tree/big.bin", at_least):
        assert time.monotonic() < deadline
        if any(p.poll() is not None for p in procs):
            raise TooLate("the transfer ended before it was seen where the test cuts it")
        time.sleep(0.002)
    cut_all(procs[0], procs[1], port, unread=tree / "big.bin")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    folder = tmp_path / "tree"
    folder.mkdir()
    with (folder / "big.bin").open("wb") as f:
        block = os.urandom(MiB)
        for i in range(160):
            f.write(i.to_bytes(4, "big") + block[4:])
    return folder


HEAL = ["-transport", "tcp", "-reconnect", "20s"]


@pytest.mark.parametrize("hostile_side", ["sender", "receiver"])
def test_reconnect_with_a_wrong_key_is_a_security_failure(hostile_side: str, tree: Path, outdir: Path,
                                                          env: dict[str, str], sp2p_server) -> None:
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}  # ss -K spares loopback
    send_args, recv_args = ["send", *HEAL, str(tree)], ["receive", *HEAL, "-output", str(outdir)]

    def receiver_for(code: str) -> subprocess.Popen[bytes]:
        if hostile_side == "receiver":
            return hostile("wrong-heal-keys", [*recv_args, code], env)
        return spawn([*recv_args, code], env)

    def attempt() -> Result:
        sender = hostile("wrong-heal-keys", send_args, env) if hostile_side == "sender" else spawn(send_args, env)
        with pair(sender, receiver_for) as receiver:
            _cut_when(outdir, 32 * MiB, (sender, receiver), server_port(sp2p_server), tree)
            return finish(receiver if hostile_side == "sender" else sender)
    honest = until_cut(outdir, attempt)
    one_line_error(honest, ExitStatus.SECURITY, "key confirmation failed")
    assert "Reconnected" not in honest.err
    if hostile_side == "sender":  # else outdir is the hostile receiver's, killed mid-heal by pair()
        nothing_final(outdir, "tree")


def test_sender_replaying_an_old_offset_is_refused(tree: Path, outdir: Path, env: dict[str, str],
                                                    sp2p_server) -> None:
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}

    def attempt() -> tuple[Result, Result]:
        sender = hostile("accept-old-offset", ["send", *HEAL, str(tree)], env)
        with pair(sender, lambda code: spawn(["receive", *HEAL, "-output", str(outdir), code], env)) as receiver:
            _cut_when(outdir, 32 * MiB, (sender, receiver), server_port(sp2p_server), tree)
            r = finish(receiver)
            return r, finish(sender)
    r, evil = until_cut(outdir, attempt)
    assert "answering 0" in evil.err, evil.err
    one_line_error(r, ExitStatus.TRANSFER, "the sender continues at byte 0, but we hold")
    nothing_final(outdir, "tree")
    assert list(outdir.iterdir()) == []  # the held extraction is removed once the transfer gives up


def test_receiver_asking_for_bytes_out_of_the_window_is_refused(tree: Path, outdir: Path, env: dict[str, str],
                                                               sp2p_server) -> None:
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}

    def attempt() -> tuple[Result, Result]:
        sender = spawn(["send", *HEAL, "-compress", "0", str(tree)], env)
        with pair(sender, lambda code: hostile("offer-old-offset", ["receive", *HEAL, "-output", str(outdir), code],
                                               env)) as receiver:
            # past the 64 MiB window: the sender cannot go back to byte 0 any more
            _cut_when(outdir, 100 * MiB, (sender, receiver), server_port(sp2p_server), tree)
            s = finish(sender)
            return s, finish(receiver)
    s, evil = until_cut(outdir, attempt)
    assert "offering 0" in evil.err, evil.err
    one_line_error(s, ExitStatus.TRANSFER, "cannot continue the transfer: the receiver needs it from byte 0")
    assert "sender error: cannot continue the transfer" in evil.err, evil.err

"""Resume on re-run with real processes (docs/protocol-extensions.md §1).

A transfer is cut by SIGKILL once the receiver's partial holds about half of a 200 MiB
file; the re-run with a new code sends only the rest. Bytes on the wire come from the
sender's own summary of the run ("N sent in …"), the hash from the file itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cut_transfer import (
    SIZE,
    MiB,
    TooLate,
    kill_receiver_in_time,
    kill_sender_in_time,
    leftovers,
    pair,
    partials,
    stopped,
    until_cut,
)
from tests.e2e.harness import Result, finish, read_code, spawn, transfer
from tests.support.files import sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GO_CLI = Path("/work/shared/reference/sp2p")
_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNITS[unit[0].upper()]


def sent_bytes(sender_err: str) -> float:
    match = re.search(r"([\d.]+ [KMGT]?i?B) sent in", sender_err)
    assert match, sender_err
    return _bytes(match.group(1))


def kill_at_half(outdir: Path, victim: subprocess.Popen[bytes], kill: Callable[[Path], None], *,
                 watch: str = ".sp2p-partial-") -> int:
    """`kill` (one of cut_transfer's *_in_time) with the growing file in `outdir` once it holds
    about half; returns its size then.

    Raises:
        TooLate: the transfer was over before the file was seen at half, or before the kill.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for p in outdir.iterdir():
            if p.name.startswith(watch) and p.suffix != ".json":
                with contextlib.suppress(FileNotFoundError):
                    if (size := p.stat().st_size) >= SIZE * 45 // 100:
                        kill(p)
                        return size  # the file may be gone at once (a -no-resume receiver cleans up)
        if victim.poll() is not None:
            raise TooLate("the transfer ended before it was seen at half")
        time.sleep(0.001)
    raise AssertionError("the partial never reached half")


def interrupted(src: Path, outdir: Path, env: dict[str, str], *, kill: str = "sender",
                recv_args: tuple[str, ...] = ()) -> tuple[int, Result]:
    """A transfer of `src` into `outdir` whose sender (or receiver) is SIGKILLed at half: it
    leaves exactly one partial. Returns (its size when seen, what the other side said)."""
    def attempt() -> tuple[int, Result]:
        with pair([str(src)], ["-output", str(outdir), *recv_args], env) as (sender, receiver):
            if kill == "sender":
                held = kill_at_half(outdir, sender, lambda _grown: kill_sender_in_time(sender, src))
                result = finish(receiver)
            else:
                held = kill_at_half(outdir, receiver, lambda grown: kill_receiver_in_time(receiver, grown))
                result = finish(sender)
        return held, result
    return until_cut(outdir, attempt)


def rerun(src: Path, outdir: Path, env: dict[str, str], *recv_args: str) -> tuple[Result, Result]:
    return transfer([str(src)], ["-output", str(outdir), *recv_args], env)


def rerun_sends_the_rest(src: Path, outdir: Path, env: dict[str, str], kept: int) -> None:
    """A re-run resumes from the `kept` bytes of the partial and completes the file exactly."""
    s, r = rerun(src, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming at" in r.err
    assert abs(sent_bytes(s.err) - (SIZE - kept)) <= 0.002 * SIZE
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def test_sender_killed_then_rerun_sends_only_the_rest(src: Path, outdir: Path, env: dict[str, str]) -> None:
    held, first = interrupted(src, outdir, env)
    assert first.rc != 0
    assert "Kept" in first.err and "resume" in first.err, first.err
    assert not (outdir / src.name).exists()  # never under the final name
    [partial] = partials(outdir)
    kept = partial.stat().st_size
    # cut at half: on a loaded machine the transfer may run on towards its end before the
    # sender stops (95 % once at load 7); short of the end is what the re-run needs
    assert SIZE * 0.3 < kept < SIZE, kept
    s, r = rerun(src, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert re.search(r"Resuming at \d+ % \(.* already here\)", r.err), r.err
    assert "already there" in s.err
    wire = sent_bytes(s.err)
    print(f"kept {kept} of {SIZE} bytes ({kept / SIZE:.0%}); the re-run sent {wire:.0f} ({wire / SIZE:.0%})")
    assert abs(wire - (SIZE - kept)) <= 0.002 * SIZE, (wire, kept)
    assert wire < SIZE * 0.7
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def test_receiver_killed_then_rerun_resumes(src: Path, outdir: Path, env: dict[str, str]) -> None:
    _held, first = interrupted(src, outdir, env, kill="receiver")
    assert first.rc != 0
    [partial] = partials(outdir)
    kept = partial.stat().st_size
    assert 0 < kept < SIZE
    rerun_sends_the_rest(src, outdir, env, kept)


def test_changed_source_is_sent_in_full(src: Path, outdir: Path, env: dict[str, str]) -> None:
    """Same size, same mtime, same first and last MiB, one byte different inside the held
    prefix: only the prefix hash can tell, and it does."""
    interrupted(src, outdir, env)
    st = src.stat()
    with src.open("r+b") as f:
        f.seek(20 * MiB)
        byte = f.read(1)
        f.seek(20 * MiB)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    s, r = rerun(src, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in r.err
    assert sent_bytes(s.err) > SIZE * 0.99
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def test_touched_source_starts_afresh_and_drops_the_old_partial(
    src: Path, outdir: Path, env: dict[str, str]
) -> None:
    interrupted(src, outdir, env)
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    s, r = rerun(src, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in r.err
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


def test_corrupted_partial_is_not_extended(src: Path, outdir: Path, env: dict[str, str]) -> None:
    """A partial whose bytes no longer match (disk trouble, tampering) offers a prefix hash
    the sender rejects: full resend, correct result."""
    interrupted(src, outdir, env)
    [partial] = partials(outdir)
    with partial.open("r+b") as f:
        f.seek(MiB + 7)
        f.write(b"\x00garbage\x00")
    s, r = rerun(src, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in r.err
    assert sha256_file(outdir / src.name) == sha256_file(src)


def test_no_resume_leaves_nothing_and_starts_from_zero(src: Path, outdir: Path, env: dict[str, str]) -> None:
    def first_run() -> Result:
        with pair([str(src)], ["-output", str(outdir), "-no-resume"], env) as (sender, receiver):
            kill_at_half(outdir, sender, lambda _temp: kill_sender_in_time(sender, src), watch=".sp2p-recv-")
            return finish(receiver)
    assert until_cut(outdir, first_run).rc != 0
    assert leftovers(outdir) == []
    interrupted(src, outdir, env)  # a partial from a resumable run …
    s, r = rerun(src, outdir, env, "-no-resume")  # … is not used by -no-resume
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in r.err
    assert sent_bytes(s.err) > SIZE * 0.99
    assert sha256_file(outdir / src.name) == sha256_file(src)


def test_nothing_resumes_across_output_folders(src: Path, outdir: Path, tmp_path: Path,
                                               env: dict[str, str]) -> None:
    interrupted(src, outdir, env)
    other = tmp_path / "other"
    other.mkdir()
    s, r = rerun(src, other, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in r.err
    assert len(partials(outdir)) == 1  # the first folder's partial is untouched


@pytest.mark.parametrize("go_side", ["sender", "receiver"])
def test_go_peer_never_resumes(go_side: str, src: Path, outdir: Path, env: dict[str, str]) -> None:
    assert GO_CLI.exists(), "the Go reference CLI is part of the environment"
    interrupted(src, outdir, env)  # a matching partial exists: a Go peer must not touch it
    [partial] = partials(outdir)
    kept = partial.stat().st_size
    result_dir = outdir  # where the file lands: ours when Go sends, Go's folder when Go receives
    if go_side == "sender":
        with pair([str(src)], ["-output", str(outdir)], env, send_cmd=[str(GO_CLI), "send"]) as (sender, receiver):
            r = finish(receiver)
            s = finish(sender)
    else:
        go_dir = outdir.parent / "go-out"
        go_dir.mkdir()
        result_dir = go_dir
        sender = spawn(["send", str(src)], env)
        try:
            code = read_code(sender)
            go = subprocess.run([str(GO_CLI), "receive", code], env=env, cwd=go_dir, capture_output=True,
                                timeout=120, check=False)
            r = Result(go.returncode, go.stdout, go.stderr.decode(errors="replace"))
            s = finish(sender)
        finally:
            if sender.poll() is None:
                os.killpg(sender.pid, signal.SIGKILL)
                sender.wait()
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Resuming" not in s.err + r.err
    if go_side == "receiver":
        assert sent_bytes(s.err) > SIZE * 0.99
    assert sha256_file(result_dir / src.name) == sha256_file(src)
    assert partials(outdir)[0].stat().st_size == kept  # the partial is left as it was


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 240 MiB tmpfs as the output folder: room for the file, not for the file and a filler."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=240m,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`."""
    filler = disk / "filler"
    block = b"\0" * MiB
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    return filler


def _grown_partial(outdir: Path, past: int) -> Path | None:
    for p in partials(outdir):
        with contextlib.suppress(FileNotFoundError):  # placed under its final name meanwhile
            if p.stat().st_size > past:
                return p
    return None


def test_disk_full_then_freed_resumes(src: Path, small_disk: Path, env: dict[str, str]) -> None:
    def first_run() -> tuple[Result, Path]:
        with pair([str(src)], ["-output", str(small_disk)], env) as (_sender, receiver):
            deadline = time.monotonic() + 60
            while (partial := _grown_partial(small_disk, SIZE // 4)) is None:
                assert time.monotonic() < deadline
                if receiver.poll() is not None:
                    raise TooLate("the file arrived before its partial was seen at a quarter")
                time.sleep(0.002)
            with stopped(receiver):  # the disk fills up under the running transfer …
                if not partial.exists() or partial.stat().st_size > SIZE - MiB:
                    raise TooLate("the receiver had written (nearly) all of it")  # … not after it
                filler = fill(small_disk)
            return finish(receiver), filler
    first, filler = until_cut(small_disk, first_run)
    assert first.rc == 7, first.err  # local I/O
    assert "disk full" in first.err and "Kept" in first.err, first.err
    [partial] = partials(small_disk)
    kept = partial.stat().st_size
    assert kept > SIZE // 4
    filler.unlink()  # space freed
    rerun_sends_the_rest(src, small_disk, env, kept)


def test_stale_partial_is_removed_and_said(src: Path, outdir: Path, env: dict[str, str]) -> None:
    interrupted(src, outdir, env)
    [partial] = partials(outdir)
    old = time.time() - 8 * 24 * 3600
    os.utime(partial, (old, old))
    small = outdir.parent / "small.txt"
    small.write_text("hello")
    s, r = rerun(small, outdir, env)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert re.search(r"Removed an interrupted download of movie\.bin .*untouched for over 7 days", r.err), r.err
    assert leftovers(outdir) == []


def test_folder_failure_says_it_cannot_resume(tmp_path: Path, outdir: Path, env: dict[str, str],
                                              big_file: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copyfile(big_file, folder / "a.bin")

    def first_run() -> Result:
        with pair([str(folder)], ["-output", str(outdir)], env) as (sender, receiver):
            deadline = time.monotonic() + 60
            while not list((outdir).glob(".sp2p-extract-*/folder/a.bin")) or (
                next(outdir.glob(".sp2p-extract-*/folder/a.bin")).stat().st_size < SIZE // 3
            ):
                assert time.monotonic() < deadline
                if sender.poll() is not None:
                    raise TooLate("the folder arrived before a.bin was seen at a third")
                time.sleep(0.002)
            kill_sender_in_time(sender, folder / "a.bin")
            return finish(receiver)
    first = until_cut(outdir, first_run)
    assert first.rc != 0
    assert "Folders and streams cannot resume" in first.err, first.err
    assert leftovers(outdir) == []

"""Bad and odd input a new user can give the real CLI: closed standard streams, inputs named
twice, -name values a receiver would not keep, an output folder nobody can write, a server
URL that does not parse or does not speak TLS. Each ends in one line on stderr and its exit
status, and nothing is lost: a sender's code stays usable when the receiver fails first."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sp2p.proto.codes import MAX_SEED_CHARS
from sp2p.status import ExitStatus
from tests.e2e.harness import Result, finish, kill, read_code, spawn, stderr_until
from tests.e2e.ptyrun import finish_tty, spawn_tty
from tests.support.codes import sender_main

pytestmark = pytest.mark.e2e


def one_line(r: Result) -> str:
    """The single error line (a hint line may follow it); no traceback."""
    assert "Traceback" not in r.err, r.err
    errors = [line for line in r.err.splitlines() if line.startswith("sp2p: error: ")]
    assert len(errors) == 1, r.err
    return errors[0]


def run_closed(args: Sequence[str], env: dict[str, str], *, close: str) -> Result:
    """The CLI with a standard descriptor closed at start (`<&-`, `>&-`), as a shell leaves it."""
    proc = subprocess.Popen(
        ["sh", "-c", f'exec "$@" {close}', "sh", sys.executable, "-m", "sp2p", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    return finish(proc, timeout=60)


@pytest.fixture
def waiting_sender(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A sender of note.txt waiting for its receiver, and its code."""
    src = tmp_path / "note.txt"
    src.write_text("still here")
    sender = spawn(["send", str(src)], env)
    try:
        yield sender, read_code(sender)
    finally:
        kill(sender)


def receive_still_works(env: dict[str, str], sender: subprocess.Popen[bytes], code: str, outdir: Path) -> None:
    """The code was not used up: a second receiver gets the file."""
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "note.txt").read_text() == "still here"


# ------------------------------------------------------------------ closed standard streams


def test_send_stdin_with_stdin_closed(env: dict[str, str]) -> None:
    r = run_closed(["send", "-"], env, close="<&-")
    assert r.rc == ExitStatus.LOCAL_IO
    assert one_line(r) == "sp2p: error: cannot send -: standard input is closed"
    assert r.out == b""  # refused before any session: no code was printed


def test_version_with_stdout_closed_is_not_a_traceback(env: dict[str, str]) -> None:
    r = run_closed(["version"], env, close=">&-")
    assert (r.rc, r.err) == (0, "")


def test_send_with_stdout_closed_still_shows_the_code_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("a")
    proc = subprocess.Popen(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "sp2p", "send", str(src)],
                            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stderr_until(proc, "Terminal:  sp2p receive")
        assert proc.poll() is None  # waiting for its receiver, not failed
    finally:
        kill(proc)


@pytest.mark.parametrize(("args", "stream", "rc"), [
    (["version"], 1, ExitStatus.OK), (["help"], 2, ExitStatus.OK), (["send", "-help"], 2, ExitStatus.OK),
    ([], 2, ExitStatus.USAGE), (["frobnicate"], 2, ExitStatus.USAGE)])
def test_output_whose_reader_is_gone_is_dropped_without_a_traceback(
    args: list[str], stream: int, rc: int, env: dict[str, str]
) -> None:
    """`sp2p version | true`: the pipe's reader is gone before the write (EPIPE). It used to
    end in a BrokenPipeError traceback and exit 1."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sp2p", *args], env=env, stdin=subprocess.DEVNULL,
                                stdout=write_end if stream == 1 else subprocess.PIPE,
                                stderr=write_end if stream == 2 else subprocess.PIPE, start_new_session=True)
    finally:
        os.close(write_end)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        kill(proc)
    assert proc.returncode == rc  # a traceback (to the dead stream, if stderr) ended in exit 1
    assert (err if stream == 1 else out) == b""


def test_a_descriptor_closed_at_start_is_never_taken_by_a_connection(env: dict[str, str], tmp_path: Path) -> None:
    """`sp2p send x <&- 2>&-`: the signaling socket took fd 2, so anything written to stderr
    below Python (a fatal error, a C library's warning) would have gone into the connection."""
    src = tmp_path / "a.txt"
    src.write_text("a")
    proc = subprocess.Popen(["sh", "-c", 'exec "$@" <&- 2>&-', "sh", sys.executable, "-m", "sp2p", "send", str(src)],
                            env=env, stdout=subprocess.PIPE, start_new_session=True)
    try:
        read_code(proc)  # waiting for its receiver, its signaling socket open
        held = {fd: os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in (0, 2)}
        assert held == {0: os.devnull, 2: os.devnull}
    finally:
        kill(proc)


def test_a_reader_of_stderr_that_goes_away_does_not_end_the_transfer(env: dict[str, str], tmp_path: Path,
                                                                     outdir: Path) -> None:
    """`sp2p send x 2>&1 | head`: messages are dropped once nobody reads them (they used to end
    the sender with 'unexpected error', exit 1); both sides lose their reader here."""
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(3 << 20))
    sender = spawn(["send", "-compress", "0", str(src)], env)
    try:
        assert sender.stderr is not None
        sender.stderr.read(16)  # its version line; what follows finds the pipe closed
        sender.stderr.close()
        code = read_code(sender)
        receiver = spawn(["receive", "-output", str(outdir), code], env)
        assert receiver.stderr is not None
        receiver.stderr.close()
        try:
            assert receiver.wait(timeout=60) == 0
        finally:
            kill(receiver)
        assert sender.wait(timeout=60) == 0
    finally:
        kill(sender)
    assert (outdir / "data.bin").read_bytes() == src.read_bytes()


def test_receive_to_closed_stdout_fails_before_using_the_code(
    env: dict[str, str], waiting_sender: tuple[subprocess.Popen[bytes], str], outdir: Path
) -> None:
    sender, code = waiting_sender
    r = run_closed(["receive", "-stdout", code], env, close=">&-")
    assert r.rc == ExitStatus.LOCAL_IO
    assert "standard output is closed" in one_line(r)
    receive_still_works(env, sender, code, outdir)


def test_a_code_one_character_short_is_refused_before_the_join(
    env: dict[str, str], waiting_sender: tuple[subprocess.Popen[bytes], str], outdir: Path
) -> None:
    """Its secret part (21 or 20 characters, as real ones sometimes are) does not open the
    sender's preview: a usage error before the join, and the code still works. Joined, both
    sides ended in exit 5 and the code was used up."""
    sender, code = waiting_sender
    r = finish(spawn(["receive", "-output", str(outdir), code[:-1]], env))
    assert r.rc == ExitStatus.USAGE
    assert one_line(r) == ("sp2p: error: this code does not open the sender's preview: its secret part "
                           "(after '-') looks cut off or mistyped")
    assert "sp2p: hint: copy the whole code again (the sender is still waiting)" in r.err
    assert "Verify:" not in r.err
    receive_still_works(env, sender, code, outdir)


def test_a_real_code_with_a_short_secret_part_still_works(env: dict[str, str], tmp_path: Path,
                                                          outdir: Path) -> None:
    """Go and we write seeds without padding (1 in 8 is 21 characters): the check before the
    join opens the sender's preview with it and lets it through; one character less is refused."""
    src = tmp_path / "note.txt"
    src.write_text("still here")
    sender = spawn(["send", str(src)], env, main=sender_main(MAX_SEED_CHARS - 1))
    try:
        code = read_code(sender)
        assert len(code.split("-")[1]) == 21, code
        r = finish(spawn(["receive", "-output", str(outdir), code[:-1]], env))
        assert r.rc == ExitStatus.USAGE and "looks cut off or mistyped" in one_line(r)
        receive_still_works(env, sender, code, outdir)
    finally:
        kill(sender)


def test_ctrl_c_at_the_accept_question_tells_the_sender(
    env: dict[str, str], waiting_sender: tuple[subprocess.Popen[bytes], str], outdir: Path
) -> None:
    sender, code = waiting_sender
    child = spawn_tty(["receive", "-output", str(outdir), code], env)
    child.expect(r"Receive it\? \[Y/n\]")
    child.sendintr()
    rc, rest = finish_tty(child, timeout=60)
    assert rc == ExitStatus.INTERRUPTED and "sp2p: error: interrupted" in rest
    s = finish(sender)
    assert s.rc == ExitStatus.TRANSFER  # the peer left; not a signaling failure (3)
    assert one_line(s) == "sp2p: error: the receiver left before the transfer started"
    assert list(outdir.iterdir()) == []


# ------------------------------------------------------------------ inputs and -name


def test_the_same_input_twice_is_refused_before_any_session(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "twice.txt"
    src.write_text("x")
    r = finish(spawn(["send", str(src), str(src)], env))
    assert r.rc == ExitStatus.USAGE
    assert one_line(r) == f"sp2p: error: {src} is given twice"
    assert r.out == b""


@pytest.mark.parametrize(
    ("name", "why"),
    [("../up.txt", "it is a path, not a file name"), ("dir/a.txt", "it is a path, not a file name"),
     ("..\\win.txt", "it is a path, not a file name"), ("", "it is blank"), ("   ", "it is blank"),
     (".", "it is not a file name"), ("..", "it is not a file name"),
     ("esc\x1b[2Kape.txt", "it contains control or undecodable characters"),
     ("x" * 256, "it is longer than 255 bytes")],
)
def test_a_name_the_receiver_would_not_keep_is_refused(name: str, why: str, env: dict[str, str],
                                                        tmp_path: Path) -> None:
    src = tmp_path / "plain.txt"
    src.write_text("x")
    r = finish(spawn(["send", "-name", name, str(src)], env))
    assert r.rc == ExitStatus.USAGE
    line = one_line(r)
    assert line.endswith(why), line
    assert "\x1b" not in r.err  # the name is shown escaped
    assert r.out == b""


def test_name_with_a_folder_is_refused_not_ignored(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(b"1")
    r = finish(spawn(["send", "-name", "holiday", str(folder)], env))
    assert r.rc == ExitStatus.USAGE
    assert "-name renames a single file or a stream" in one_line(r)


def test_a_non_utf8_file_name_is_refused_with_a_way_out(env: dict[str, str], tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"x")
    r = finish(spawn(["send", os.fsdecode(raw)], env))
    assert r.rc == ExitStatus.LOCAL_IO
    assert one_line(r) == f"sp2p: error: cannot send {tmp_path}/caf\ufffd.txt: its name is not valid UTF-8"
    assert "-name" in r.err


def test_name_of_a_non_utf8_file_is_sent(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    """A file whose own name is not UTF-8 can still be sent under a -name that is."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9.txt"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    sender = spawn(["send", "-name", "cafe.txt", os.fsdecode(raw)], env)
    code = read_code(sender)
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    assert (finish(sender).rc, r.rc) == (0, 0), r.err
    assert (outdir / "cafe.txt").read_bytes() == b"latin-1 name"


# ------------------------------------------------------------------ output folder


def _read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write: a read-only tmpfs for root (who writes through any
    mode bits), mode 0555 for anyone else."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        yield folder


def test_unwritable_output_fails_before_using_the_code(
    env: dict[str, str], waiting_sender: tuple[subprocess.Popen[bytes], str], tmp_path: Path, outdir: Path
) -> None:
    sender, code = waiting_sender
    for folder in _read_only_folder(tmp_path):
        r = finish(spawn(["receive", "-output", str(folder), code], env))
        assert r.rc == ExitStatus.LOCAL_IO
        line = one_line(r)
        assert "read-only file system" in line or "is not writable" in line, line
        assert "Connected" not in r.err  # never joined the session
        assert list(folder.iterdir()) == []
    receive_still_works(env, sender, code, outdir)


# ------------------------------------------------------------------ flags


@pytest.mark.parametrize(("argv", "hint"), [
    (["sned", "x"], "did you mean 'sp2p send'?"), (["recieve"], "did you mean 'sp2p receive'?"),
    (["-server", "http://h", "send", "x"], "flags follow the command, as in: sp2p send -server …"),
    (["-output", "x", "receive"], "flags follow the command, as in: sp2p receive -output …"),
    (["--server=http://h", "send", "x"], "flags follow the command, as in: sp2p send -server …"),
    (["-\x1b[2J"], "run 'sp2p help' for the commands"),  # not one of our flags: nothing echoed
    (["frobnicate"], "run 'sp2p help' for the commands")])
def test_an_unknown_command_says_what_to_type(argv: list[str], hint: str, env: dict[str, str]) -> None:
    r = finish(spawn(argv, env))
    assert r.rc == ExitStatus.USAGE
    one_line(r)
    assert r.err.splitlines()[-1] == f"sp2p: hint: {hint}"


@pytest.mark.parametrize("args", [["receive", "-server=", "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"],
                                  ["receive", "-output", "", "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"],
                                  ["send", "-url=", "x"]])
def test_an_explicitly_empty_flag_is_not_quietly_the_default(args: list[str], env: dict[str, str]) -> None:
    """`-server=` used to dial localhost:8080 (an empty SP2P_SERVER is ignored, as documented)."""
    flag = next(a for a in args if a.startswith("-")).split("=")[0]
    r = finish(spawn(args, env))
    assert r.rc == ExitStatus.USAGE
    assert one_line(r) == f"sp2p: error: {flag} is empty"


def test_stdout_and_output_together(env: dict[str, str], outdir: Path) -> None:
    r = finish(spawn(["receive", "-stdout", "-output", str(outdir), "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"], env))
    assert r.rc == ExitStatus.USAGE
    assert one_line(r) == "sp2p: error: -stdout and -output exclude each other"


# ------------------------------------------------------------------ permissions


def run_without_override(args: Sequence[str], env: dict[str, str]) -> Result:
    """The CLI as a user whom mode bits bind: root without CAP_DAC_OVERRIDE/READ_SEARCH (the
    owner of a mode-000 file is refused like anyone else), anyone else as they are."""
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([*drop, sys.executable, "-m", "sp2p", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    return finish(proc, timeout=60)


def test_permissions_deny_before_any_session(env: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    folder = tmp_path / "folder"
    (folder / "locked").mkdir(parents=True)
    (folder / "ok.txt").write_text("y")
    (folder / "locked" / "in.txt").write_text("z")
    output = tmp_path / "readonly"
    output.mkdir()
    secret.chmod(0)
    (folder / "locked").chmod(0)
    output.chmod(0o555)
    try:
        cases = [
            (["send", str(secret)], ExitStatus.LOCAL_IO, f"cannot send {secret}: permission denied"),
            (["send", str(folder)], ExitStatus.LOCAL_IO,
             f"cannot read directory {folder / 'locked'}: Permission denied"),
            (["receive", "-output", str(output), "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"], ExitStatus.LOCAL_IO,
             f"output folder {output} is not writable for you"),
        ]
        for args, status, message in cases:
            r = run_without_override(args, env)
            assert (r.rc, one_line(r)) == (status, f"sp2p: error: {message}"), r.err
            assert r.out == b""
    finally:
        (folder / "locked").chmod(0o755)


def test_a_deleted_current_folder_fails_before_using_the_code(
    env: dict[str, str], waiting_sender: tuple[subprocess.Popen[bytes], str], tmp_path: Path, outdir: Path
) -> None:
    sender, code = waiting_sender
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen(["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", str(gone),
                             sys.executable, "-m", "sp2p", "receive", code],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    r = finish(proc)
    assert r.rc == ExitStatus.LOCAL_IO
    assert one_line(r) == "sp2p: error: output folder . was deleted"
    receive_still_works(env, sender, code, outdir)

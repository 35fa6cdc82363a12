"""What a new user meets first (issue 14): the code prompt, the share URL's server, the printed
receive commands, and messages that say what happened. All through the real CLI."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pexpect
import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import CODE_RE, REPO, finish, read_code, spawn, stderr_until
from tests.e2e.ptyrun import finish_tty, spawn_tty
from tests.support.server_proc import ServerProc

pytestmark = pytest.mark.e2e


def _no_server_env(env: dict[str, str]) -> dict[str, str]:
    """The receiver's machine: nothing tells it which server the sender used."""
    return {k: v for k, v in env.items() if k != "SP2P_SERVER"}


def _share_url(sender_out: bytes) -> str:
    return sender_out.decode().splitlines()[1]


def test_prompt_reads_a_pasted_share_url_without_echo(env: dict[str, str], tmp_path: Path,
                                                      outdir: Path) -> None:
    src = tmp_path / "prompted.txt"
    src.write_text("typed at the prompt")
    sender = spawn(["send", str(src)], env)
    code = read_code(sender)
    assert sender.stdout is not None
    url = sender.stdout.readline().decode().strip()
    child = spawn_tty(["receive", "-output", str(outdir)], _no_server_env(env))
    child.expect("Transfer code or share URL")
    child.sendline(url)
    child.expect(r"Offer: prompted\.txt, 19 B, from a CLI")
    child.expect(r"Receive it\? \[Y/n\]")
    child.sendline("y")
    rc, rest = finish_tty(child)
    s = finish(sender)
    assert (rc, s.rc) == (0, 0), rest + s.err
    seed = code.split("-")[1]
    # the terminal never echoed the seed back, and it was in no argv
    assert seed not in (child.before or "") + rest
    assert (outdir / "prompted.txt").read_text() == "typed at the prompt"


def test_prompt_code_stays_out_of_argv(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "argv.txt"
    src.write_text("x")
    sender = spawn(["send", str(src)], env)
    code = read_code(sender)
    child = spawn_tty(["receive", "-output", str(outdir)], env)
    child.expect("not shown")
    with open(f"/proc/{child.pid}/cmdline", "rb") as f:
        assert code.split("-")[1].encode() not in f.read()
    child.sendline(code)
    child.expect(r"Receive it\?")
    child.sendline("")
    rc, rest = finish_tty(child)
    assert rc == 0, rest
    assert finish(sender).rc == 0


def test_prompt_without_answer_is_a_usage_error(env: dict[str, str], outdir: Path) -> None:
    child = spawn_tty(["receive", "-output", str(outdir)], env)
    child.expect("not shown")
    child.sendline("")
    rc, rest = finish_tty(child)
    assert rc == ExitStatus.USAGE and "expected exactly one transfer code" in rest


def test_code_prompt_shows_once_the_terminal_stopped_echoing(env: dict[str, str], outdir: Path,
                                                             tmp_path: Path) -> None:
    """Turning echo off (TCSETSF) flushes what was typed: a prompt shown before it could lose
    a paste, or a Ctrl-D, typed the moment it appeared (the receiver then waited for a line
    already sent). The order of the two system calls is what decides it: strace shows it."""
    trace = tmp_path / "strace.log"
    child = pexpect.spawn("strace", ["-f", "-e", "trace=ioctl,write", "-o", str(trace), sys.executable,
                                     "-m", "sp2p", "receive", "-output", str(outdir)],
                          env=env, encoding="utf-8", timeout=60)
    child.expect("not shown")
    child.sendeof()
    rc, rest = finish_tty(child, timeout=60)
    assert rc == ExitStatus.USAGE and "expected exactly one transfer code" in rest
    calls = trace.read_text().splitlines()
    no_echo = next(i for i, line in enumerate(calls) if "TCSETSF" in line and "|ECHO|" not in line)
    prompt = next(i for i, line in enumerate(calls) if "Transfer code or share URL" in line)
    assert no_echo < prompt, "\n".join(calls[min(no_echo, prompt):max(no_echo, prompt) + 1])


def test_share_url_selects_its_server(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "far.txt"
    src.write_text("over the URL's server")
    sender = spawn(["send", str(src)], env)
    read_code(sender)
    assert sender.stdout is not None
    url = sender.stdout.readline().decode().strip()
    # SP2P_SERVER unset: the default (localhost:8080) would say "not found"
    r = finish(spawn(["receive", "-output", str(outdir), url], _no_server_env(env)))
    s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "far.txt").read_text() == "over the URL's server"


def test_server_flag_disagreeing_with_the_url_names_both(env: dict[str, str], outdir: Path) -> None:
    url = "http://127.0.0.1:9/r#k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"
    r = finish(spawn(["receive", "-server", "http://other.example:8080", url], env))
    assert r.rc == ExitStatus.USAGE
    assert "other.example:8080" in r.err and "http://127.0.0.1:9" in r.err
    assert "Traceback" not in r.err


def test_printed_receive_commands_work_as_printed(env: dict[str, str], sp2p_server: ServerProc,
                                                  tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "printed.txt"
    src.write_text("copy and paste")
    sender = spawn(["send", str(src)], env)
    code = read_code(sender)
    lines = stderr_until(sender, "SP2P_CODE=")
    terminal = next(line for line in lines if "Terminal:" in line).split("Terminal:", 1)[1].strip()
    assert terminal == f"sp2p receive -server {sp2p_server.http_url} {code}"
    argv = shlex.split(terminal)
    assert argv[0] == "sp2p"
    r = finish(spawn([*argv[1:], "-output", str(outdir)], _no_server_env(env)))
    s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert (outdir / "printed.txt").read_text() == "copy and paste"


# ------------------------------------------------------------------ messages (item 6)


def test_a_used_code_says_it_may_have_been_used(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "once.txt"
    src.write_text("once")
    sender = spawn(["send", str(src)], env)
    code = read_code(sender)
    r1 = finish(spawn(["receive", "-output", str(outdir), code], env))
    assert (finish(sender).rc, r1.rc) == (0, 0)
    r2 = finish(spawn(["receive", "-output", str(outdir), code], env))
    assert r2.rc == ExitStatus.SIGNALING
    assert "already used" in r2.err


def test_output_that_is_a_file(env: dict[str, str], tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    r = finish(spawn(["receive", "-output", str(afile), "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"], env))
    assert r.rc == ExitStatus.LOCAL_IO
    assert "is not a folder" in r.err and "does not exist" not in r.err


def test_server_with_a_wrong_path_is_one_clear_line(env: dict[str, str], sp2p_server: ServerProc) -> None:
    r = finish(spawn(["receive", "-server", f"{sp2p_server.http_url}/nothing/here",
                      "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"], env))
    assert r.rc == ExitStatus.SIGNALING
    assert "not an sp2p signaling endpoint (HTTP 404)" in r.err
    assert not re.search(r"(?i)content-type|server:|-\+-\+-", r.err), r.err


def test_several_paths_are_described_honestly(env: dict[str, str], tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.txt").write_text("1")
        (tmp_path / name / "2.txt").write_text("2")
    (tmp_path / "c.txt").write_text("3")
    sender = spawn(["send", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c.txt")], env)
    read_code(sender)
    line = stderr_until(sender, "Sending:")[-1]
    sender.kill()
    finish(sender)
    assert "3 items" in line and "5 files" in line and "3-files" not in line


def test_help_lists_debug_and_the_man_page_codes_parse() -> None:
    import subprocess

    from sp2p.proto.codes import parse_code

    for command in ("send", "receive"):
        out = subprocess.run([sys.executable, "-m", "sp2p", command, "-help"], capture_output=True,
                             text=True, env={"PYTHONPATH": str(REPO), "HOME": "/nonexistent"}, check=True)
        assert "-debug" in out.stderr
    page = (REPO / "packaging" / "man" / "sp2p.1").read_text().replace("\\-", "-")
    codes = re.findall(r"\b[a-z0-9]{8}-[0-9A-Za-z]+\b", page)
    assert codes
    for code in codes:
        parse_code(code)  # raises on a code the CLI would reject
        assert CODE_RE.fullmatch(code)


def test_pexpect_is_a_real_terminal(env: dict[str, str]) -> None:
    """Guards the tests above: the child really sees a terminal on stderr."""
    child = pexpect.spawn(sys.executable, ["-c", "import sys; print(sys.stderr.isatty())"],
                          env=env, encoding="utf-8")
    child.expect(pexpect.EOF)
    assert "True" in (child.before or "")

"""The receiver's accept question (issue 14 item 3), through the real CLI on a pseudo-terminal:
the decrypted preview, `Receive it? [Y/n]`, -yes and `yes: true`, declining (the sender is told),
and a sender that left no preview."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pexpect
import pytest
import websocket

from sp2p.proto.codes import MAX_SEED_CHARS
from sp2p.status import ExitStatus
from tests.e2e.harness import finish, read_code, spawn, spawn_scripted
from tests.e2e.ptyrun import finish_tty, spawn_tty
from tests.support.codes import sender_main
from tests.support.go_server import GO_CLI, go_sender
from tests.support.server_proc import ServerProc

pytestmark = pytest.mark.e2e

SIZE = 2_202_010  # 2.1 MiB


def _offer(env: dict[str, str], tmp_path: Path, secret_chars: int = MAX_SEED_CHARS) -> tuple[object, str]:
    src = tmp_path / "report.pdf"
    src.write_bytes(os.urandom(SIZE))
    sender = spawn(["send", str(src)], env, main=sender_main(secret_chars))
    code = read_code(sender)
    assert len(code.split("-")[1]) == secret_chars, code
    return sender, code


#: a full-length secret part, and a short one (1 in 8): its receiver opens the preview once
#: before the join (sp2p/flow/code_check.py) and again for the question
SECRET_LENGTHS = pytest.mark.parametrize("secret_chars", [MAX_SEED_CHARS, MAX_SEED_CHARS - 1],
                                         ids=["full-code", "short-code"])


@SECRET_LENGTHS
def test_preview_then_enter_receives(secret_chars: int, env: dict[str, str], tmp_path: Path,
                                     outdir: Path) -> None:
    sender, code = _offer(env, tmp_path, secret_chars)
    child = spawn_tty(["receive", "-output", str(outdir), code], env)
    child.expect(r"Offer: report\.pdf, 2\.1 MiB, from a CLI")
    child.expect(r"Receive it\? \[Y/n\] ")
    assert not list(outdir.iterdir())  # nothing before the answer
    child.sendline("")
    rc, screen = finish_tty(child)
    s = finish(sender)  # type: ignore[arg-type]
    assert (s.rc, rc) == (0, 0), s.err + screen
    assert (outdir / "report.pdf").stat().st_size == SIZE


def test_declining_tells_the_sender(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    sender, code = _offer(env, tmp_path)
    child = spawn_tty(["receive", "-output", str(outdir), code], env)
    child.expect(r"Receive it\? \[Y/n\] ")
    child.sendline("n")
    rc, screen = finish_tty(child)
    s = finish(sender)  # type: ignore[arg-type]
    assert rc == ExitStatus.TRANSFER and "Declined" in screen, screen
    assert s.rc == ExitStatus.TRANSFER and "the receiver declined" in s.err, s.err
    assert "Traceback" not in s.err + screen
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("how", ["flag", "config"])
def test_yes_skips_the_question(how: str, env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    sender, code = _offer(env, tmp_path)
    args = ["receive", "-output", str(outdir), code]
    if how == "flag":
        args.insert(1, "-yes")
    else:
        (Path(env["XDG_CONFIG_HOME"]) / "sp2p").mkdir(parents=True, exist_ok=True)
        (Path(env["XDG_CONFIG_HOME"]) / "sp2p" / "config.yaml").write_text("yes: true\n")
    child = spawn_tty(args, env)
    rc, screen = finish_tty(child)
    assert rc == 0 and "Receive it?" not in screen, screen
    assert finish(sender).rc == 0  # type: ignore[arg-type]
    assert (outdir / "report.pdf").stat().st_size == SIZE


def test_without_a_terminal_it_proceeds_as_before(env: dict[str, str], tmp_path: Path,
                                                  outdir: Path) -> None:
    sender, code = _offer(env, tmp_path)
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    assert (finish(sender).rc, r.rc) == (0, 0)  # type: ignore[arg-type]
    assert "Receive it?" not in r.err


def test_no_preview_says_so_and_asks_anyway(env: dict[str, str], sp2p_server: ServerProc,
                                            outdir: Path) -> None:
    """A sender that stored no file-info (an old client or server): the receiver says there is
    no preview, still asks, and a 'no' reaches the sender as a relayed `decline`."""
    ws = websocket.create_connection(sp2p_server.ws_url, timeout=20, suppress_origin=True)
    try:
        ws.send(json.dumps({"type": "hello", "payload": {"version": 2, "clientType": "cli"}}))
        welcome = json.loads(ws.recv())
        assert welcome["type"] == "welcome"
        code = f"{welcome['payload']['sessionId']}-6mBhJfNj3WXtM6Zyq83xdf"
        child = spawn_tty(["receive", "-output", str(outdir), code], env)
        child.expect("No preview of the offer from a CLI")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("no")
        rc, screen = finish_tty(child)
        assert rc == ExitStatus.TRANSFER, screen
        seen = []
        while not seen or seen[-1] not in ("decline", "peer-left"):
            seen.append(json.loads(ws.recv())["type"])
        assert "decline" in seen and "crypto" not in seen, seen  # the key was never sent
    finally:
        ws.close()


def test_a_stream_that_differs_from_the_preview_is_asked_again(env: dict[str, str], tmp_path: Path,
                                                               outdir: Path) -> None:
    """C16: the preview is only a preview; the name in the stream is shown and asked about."""
    src = tmp_path / "report.pdf"
    src.write_bytes(b"%PDF" * 100)
    sender = spawn_scripted(["send", str(src)], env, script="switch-offer")
    try:
        child = spawn_tty(["receive", "-output", str(outdir), read_code(sender)], env)
        child.expect(r"Offer: report\.pdf, 400 B, from a CLI")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("y")
        child.expect(r"The sender now offers other\.exe \(20 B\), not what the preview showed")
        child.expect(r"Receive it anyway\? \[Y/n\] ")
        child.sendline("n")
        rc, screen = finish_tty(child)
    finally:
        sender.kill()
        finish(sender)
    assert rc == ExitStatus.TRANSFER and "declined the changed offer" in screen, screen
    assert list(outdir.iterdir()) == []


@SECRET_LENGTHS
def test_a_go_senders_preview_is_shown_and_accepted(secret_chars: int, env: dict[str, str], tmp_path: Path,
                                                    outdir: Path) -> None:
    """The original Go CLI stores its Metadata as the preview: our receiver reads it the same
    (and a short Go code passes the check before the join)."""
    assert GO_CLI.exists(), "the Go reference CLI is part of the environment"
    src = tmp_path / "from-go.txt"
    src.write_text("hello from Go\n" * 100)
    go, code = go_sender([str(src)], env, secret_chars)
    try:
        child = spawn_tty(["receive", "-output", str(outdir), code], env)
        child.expect(r"Offer: from-go\.txt, 1\.4 KiB, from a CLI")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("")
        rc, screen = finish_tty(child)
        assert rc == 0, screen
        go.expect(pexpect.EOF, timeout=30)
    finally:
        go.close(force=True)
    assert (outdir / "from-go.txt").read_text() == "hello from Go\n" * 100

"""The command line in-process: flags, usage, exit codes, messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp2p import __version__
from sp2p.cli import main
from sp2p.errors import UsageError
from sp2p.flags import RECEIVE_FLAGS, SEND_FLAGS, parse_flags
from sp2p.status import ExitStatus


def run(capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
        ) -> tuple[int, str, str]:
    rc = main(list(argv), env or {"HOME": "/nonexistent"})
    out, err = capsys.readouterr()
    return rc, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for spelling in ("version", "--version", "-version"):
        assert run(capsys, spelling) == (0, f"sp2p {__version__}\n", "")


def test_help_and_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "help")
    assert rc == 0 and "send" in err and "SP2P_SERVER" in err and out == ""
    rc, _, err = run(capsys)
    assert rc == ExitStatus.USAGE and "usage" in err


def test_command_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "send", "-help")
    assert rc == 0
    for flag in ("-server", "-url", "-name", "-compress", "-allow-relay", "-transport", "-parallel", "-v"):
        assert flag in err
    rc, _, err = run(capsys, "recv", "--help")
    assert rc == 0 and "-output" in err and "-stdout" in err


def test_unknown_command_and_flag(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "frobnicate")
    assert rc == ExitStatus.USAGE and "unknown command" in err
    rc, _, err = run(capsys, "send", "-bogus", "x")
    assert rc == ExitStatus.USAGE
    assert err.splitlines()[-2:] == ["sp2p: error: unknown flag: -bogus", "sp2p: hint: see -help for the flags"]


@pytest.mark.parametrize(("argv", "hint"), [
    (("send", "-output", "x", "f"), "-output is a flag of 'sp2p receive'"),
    (("send", "-yes", "f"), "-yes is a flag of 'sp2p receive'"),
    (("receive", "-name=x", "CODE"), "-name is a flag of 'sp2p send'"),
    (("send", "--nam", "x", "-"), "did you mean -name?"),
    (("receive", "-ouptut", "x", "CODE"), "did you mean -output?"),
    (("receive", "-o", "x", "CODE"), "did you mean -output?"),
    (("send", "-compres", "3", "f"), "did you mean -compress?"),
    (("send", "-verbose", "f"), "did you mean -v?"),
    (("receive", "-s", "x", "CODE"), "see -help for the flags"),  # -server or -stdout: no guess
])
def test_an_unknown_flag_names_the_one_meant(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                             hint: str) -> None:
    """A typo or the other command's flag was only 'see -help for the flags' (click, which
    magic-wormhole uses, names the near miss)."""
    rc, _, err = run(capsys, *argv)
    assert rc == ExitStatus.USAGE
    assert err.splitlines()[-1] == f"sp2p: hint: {hint}"


def test_debug_shows_a_traceback_after_any_error_as_its_help_says(capsys: pytest.CaptureFixture[str]) -> None:
    """-help said 'for unexpected errors' while -debug showed one after every error."""
    assert "after any error" in SEND_FLAGS["debug"][1] and "after any error" in RECEIVE_FLAGS["debug"][1]
    rc, _, err = run(capsys, "send", "-debug", "-compress", "12", "x")
    assert rc == ExitStatus.USAGE and "Traceback" in err
    rc, _, err = run(capsys, "send", "-compress", "12", "x")
    assert rc == ExitStatus.USAGE and "Traceback" not in err


def test_send_without_a_path_but_with_a_pipe_says_to_add_the_dash(tmp_path: Path) -> None:
    """`tar c dir | sp2p send -name dir.tar` (the '-' forgotten) got the general usage line."""
    import io
    import os

    from sp2p.cli import Streams

    r, w = os.pipe()
    os.close(w)
    with os.fdopen(r, "rb") as piped, open(os.devnull, "rb") as null:
        for stdin, hint in ((piped, "to send what is piped in, add '-': sp2p send [flags] -"),
                            (null, "usage: sp2p send [flags] <file|folder|...|->")):
            err = io.StringIO()
            rc = main(["send", "-name", "dir.tar"], {"HOME": str(tmp_path)}, Streams(stdin, io.StringIO(), err))
            assert rc == ExitStatus.USAGE
            assert err.getvalue().splitlines()[-2:] == ["sp2p: error: nothing to send", f"sp2p: hint: {hint}"]


def test_go_style_flags() -> None:
    p = parse_flags(["file", "-v", "--compress=5", "-server", "h:1", "-allow-relay=false", "-", "--", "-x"],
                    SEND_FLAGS)
    assert p.args == ["file", "-", "-x"]
    assert p.flags == {"v": True, "compress": 5, "server": "h:1", "allow-relay": False}
    with pytest.raises(UsageError, match="needs an argument"):
        parse_flags(["-output"], RECEIVE_FLAGS)
    with pytest.raises(UsageError, match="whole number"):
        parse_flags(["-compress", "high"], SEND_FLAGS)
    with pytest.raises(UsageError, match="boolean"):
        parse_flags(["-stdout=maybe"], RECEIVE_FLAGS)


@pytest.mark.parametrize(
    ("argv", "status", "text"),
    [
        (["receive"], ExitStatus.USAGE, "exactly one transfer code"),
        (["receive", "a", "b"], ExitStatus.USAGE, "exactly one transfer code"),
        (["receive", "abcdefgh-0"], ExitStatus.USAGE, "too short"),
        (["send"], ExitStatus.USAGE, "nothing to send"),
        (["send", "-compress", "12", "x"], ExitStatus.USAGE, "compress"),
        (["send", "-transport", "carrier-pigeon", "x"], ExitStatus.USAGE, "transport"),
        (["send", "-parallel", "9", "x"], ExitStatus.USAGE, "parallel"),
        (["send", "/definitely/missing/file"], ExitStatus.LOCAL_IO, "cannot send"),
        (["send", "-", "x"], ExitStatus.USAGE, "only input"),
    ],
)
def test_bad_input_gets_one_clear_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                       status: ExitStatus, text: str) -> None:
    rc, out, err = run(capsys, *argv)
    assert rc == status
    assert text in err
    assert "Traceback" not in err
    assert out == ""


def test_malformed_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "sp2p" / "config.yaml"
    cfg.parent.mkdir()
    cfg.write_text("server: [unclosed\n")
    rc, _, err = run(capsys, "receive", "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf",
                     env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert rc == ExitStatus.USAGE
    assert f"parsing {cfg}" in err
    cfg.write_text("colour: blue\n")
    rc, _, err = run(capsys, "receive", "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf",
                     env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert rc == ExitStatus.USAGE and "unknown key" in err


def test_unreachable_server(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "receive", "-output", str(tmp_path), "-server", "http://127.0.0.1:9",
                     "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf")
    assert rc == ExitStatus.SIGNALING
    assert "cannot reach the signaling server" in err


def test_exit_status_table_is_stable() -> None:
    assert {s.name: int(s) for s in ExitStatus} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "SIGNALING": 3, "CONNECT": 4, "SECURITY": 5,
        "TRANSFER": 6, "LOCAL_IO": 7, "TIMEOUT": 8, "INTERRUPTED": 130,
    }

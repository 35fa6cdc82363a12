"""Every flag of `sp2p send` and `sp2p receive` given odd values ends in one error line and a
documented exit status other than 1 (which means a bug): a sweep through the in-process CLI,
with the server on a closed port so nothing waits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp2p.cli import Streams, main
from sp2p.flags import RECEIVE_FLAGS, SEND_FLAGS
from sp2p.status import ExitStatus
from tests.support.ports import refusing_port
from tests.support.run_cli import run_cli

#: shapes of mistakes: empty, signs, overflow, other number syntaxes, non-ASCII digits,
#: undecodable argv bytes (a lone surrogate), broken URLs, durations, paths
ODD_VALUES = ["", " ", "-1", "0", "99999999999999999999", "1e3", "nan", "inf", "\udcff", "http://[", "://",
              "ws://", "wss://:0", "host:", ":80", "1h1h", "1.5.5s", "\u0663", "\u00b9", "0x10", " 3 ", "1_0",
              "true", "http://h:0", "http://h:-1", "h:80/ws?x#y", "~", "~user/x", "/dev/null", ".5s", "a..b"]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on: a connect is refused at once."""
    with refusing_port() as port:
        yield port


@pytest.mark.parametrize("command", ["send", "receive"])
def test_odd_flag_values_never_end_in_exit_1(command: str, closed_port: int, tmp_path: Path) -> None:
    spec = SEND_FLAGS if command == "send" else RECEIVE_FLAGS
    target = str(tmp_path / "in.txt") if command == "send" else "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf"
    (tmp_path / "in.txt").write_text("x")
    env = {"SP2P_SERVER": f"http://127.0.0.1:{closed_port}", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    seen: set[ExitStatus] = set()
    for name in spec:
        for value in ODD_VALUES:
            args = (command, f"-{name}={value}", target)
            r = run_cli(*args, env=env, tolerate_error=True)
            assert r.exit_status not in (ExitStatus.OK, ExitStatus.ERROR), (args, r.stderr)
            assert len(r.errors) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
            seen.add(r.exit_status)
    assert {ExitStatus.USAGE, ExitStatus.SIGNALING} <= seen  # the sweep reached both checks


@pytest.mark.parametrize("where", ["env", "file", "flag"])
def test_an_unreachable_server_not_typed_here_names_where_it_came_from(where: str, closed_port: int,
                                                                      tmp_path: Path) -> None:
    """A stale SP2P_SERVER in a shell profile, or a config file's server, that no longer answers:
    the hint said 'name another (-server, SP2P_SERVER)' and left the user to guess which."""
    server = f"http://127.0.0.1:{closed_port}"
    (tmp_path / "sp2p").mkdir()
    (tmp_path / "sp2p" / "config.yaml").write_text(f"server: {server}\n" if where == "file" else "")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), **({"SP2P_SERVER": server} if where == "env" else {})}
    argv = ["receive", *(["-server", server] if where == "flag" else []), "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf"]
    err = io.StringIO()
    rc = main(argv, env, Streams(None, io.StringIO(), err))
    assert rc == ExitStatus.SIGNALING
    lines = err.getvalue().splitlines()
    assert lines[-2].startswith(f"sp2p: error: cannot reach the signaling server at ws://127.0.0.1:{closed_port}/ws")
    origin = {"env": "SP2P_SERVER", "file": f"the config file {tmp_path / 'sp2p' / 'config.yaml'}"}.get(where)
    if origin:
        assert lines[-1] == f"sp2p: hint: the server comes from {origin}: fix it there, or give -server to override it"
    else:
        assert "comes from" not in lines[-1]

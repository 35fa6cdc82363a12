"""Our newest client behaviour against the original Go CLI, on our server and on the original Go
server (docs/protocol-extensions.md, "What a Go peer sees"): the short-code check before the join
(sp2p/flow/code_check.py) with a Go sender's code, declining a Go sender, and the exit status when
a Go peer leaves while the two sides connect. Real processes throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
import websocket

from sp2p.proto.codes import BASE62_ALPHABET, MAX_SEED_CHARS
from sp2p.status import ExitStatus
from tests.e2e.cut_transfer import SIZE, leftovers, pair, until_cut
from tests.e2e.harness import Result, cli_env, finish, kill, read_code, spawn, spawn_scripted, stderr_until
from tests.e2e.links import cut_all, server_port
from tests.e2e.ptyrun import finish_tty, spawn_tty
from tests.e2e.test_cli_edges import one_line
from tests.e2e.test_resume_heal import _wait_grown
from tests.support.codes import sender_main
from tests.support.files import sha256_file
from tests.support.go_server import GO_CLI, GoServer, go_finish, go_idle, go_sender, spawn_go
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

pytestmark = pytest.mark.e2e

SHORT = MAX_SEED_CHARS - 1  #: a 21-character secret part: 1 real code in 8, Go's too
TEXT = "hello from Go\n" * 100


@dataclass
class Where:
    """The server a test runs on: ours (the suite's) or the original Go server."""

    env: dict[str, str]
    go: GoServer | None  #: the Go server, to keep its rate limit in mind when drawing


@pytest.fixture(params=["our-server", "go-server"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    """The CLI environment for either server (a fresh Go server per test: its per-address
    limiter starts full)."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    if request.param == "our-server":
        ours: ServerProc = request.getfixturevalue("sp2p_server")
        yield Where(cli_env(ours.http_url, home), None)
    else:
        with GoServer.running(tmp_path / "go-server") as go:
            yield Where(cli_env(go.http_url, home), go)


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "from-go.txt"
    src.write_text(TEXT)
    return src


def _mistyped(code: str) -> str:
    """`code` with its last character changed: same length, another seed."""
    last = BASE62_ALPHABET.index(code[-1])
    return code[:-1] + BASE62_ALPHABET[(last + 1) % len(BASE62_ALPHABET)]


def test_a_short_go_code_is_checked_on_the_go_servers_preview_and_received(
        where: Where, tmp_path: Path, outdir: Path) -> None:
    """A Go sender's 21-character code, first mistyped (the last character), then right: the
    mistyped one is refused before the join (exit 2: it does not open the preview the Go sender
    stored, fetched from either server), the Go sender never hears of it and keeps waiting, and
    the right code then receives with the question answered."""
    go, code = go_sender([str(_source(tmp_path))], where.env, SHORT, where.go)
    try:
        wrong = finish(spawn(["receive", "-output", str(outdir), _mistyped(code)], where.env), timeout=60)
        assert wrong.rc == ExitStatus.USAGE, wrong.err
        assert one_line(wrong) == ("sp2p: error: this code does not open the sender's preview: "
                                   "its secret part (after '-') looks cut off or mistyped")
        assert go.isalive()
        with pytest.raises(pexpect.TIMEOUT):  # no receiver ever joined the Go sender's session
            go.expect("Receiver connected", timeout=1)
        child = spawn_tty(["receive", "-output", str(outdir), code], where.env)
        child.expect(r"Offer: from-go\.txt, 1\.4 KiB, from a CLI")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("")
        rc, screen = finish_tty(child)
        assert rc == 0, screen
        go_rc, go_out = go_finish(go)
        assert go_rc == 0, go_out
    finally:
        go.close(force=True)
    assert (outdir / "from-go.txt").read_text() == TEXT


def test_declining_a_go_sender_ends_both(where: Where, tmp_path: Path, outdir: Path) -> None:
    """The Go sender knows no `decline` (the Go server does not even relay it): it hears the
    receiver disconnect right after the decline and exits 1, without hanging; ours exits 6 and
    leaves nothing in -output."""
    go, code = go_sender([str(_source(tmp_path))], where.env, MAX_SEED_CHARS, where.go)
    try:
        child = spawn_tty(["receive", "-output", str(outdir), code], where.env)
        child.expect(r"Offer: from-go\.txt, 1\.4 KiB, from a CLI")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("n")
        rc, screen = finish_tty(child)
        go_rc, go_out = go_finish(go, timeout=30)
    finally:
        go.close(force=True)
    assert rc == ExitStatus.TRANSFER, screen
    assert "Declined" in screen
    assert go_rc == 1 and "Receiver disconnected" in go_out, go_out
    assert list(outdir.iterdir()) == []


def test_declined_on_the_go_server_our_sender_hears_the_receiver_leave(tmp_path: Path, outdir: Path) -> None:
    """The Go server drops `decline` (a type it does not know): our sender hears `peer-left`
    and says the receiver left (exit 6, as the decline itself would be), at once."""
    with GoServer.running(tmp_path / "go-server") as go:
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        env = cli_env(go.http_url, home)
        sender = spawn(["send", str(_source(tmp_path))], env)
        try:
            child = spawn_tty(["receive", "-output", str(outdir), read_code(sender)], env)
            child.expect(r"Receive it\? \[Y/n\] ")
            child.sendline("n")
            rc, screen = finish_tty(child)
            s = finish(sender, timeout=30)
        finally:
            kill(sender)
    assert rc == ExitStatus.TRANSFER, screen
    assert s.rc == ExitStatus.TRANSFER, s.err
    assert one_line(s) == "sp2p: error: the receiver left before the transfer started"
    assert list(outdir.iterdir()) == []


def test_our_short_code_to_a_go_receiver(where: Where, tmp_path: Path, outdir: Path) -> None:
    """Our sender with a 21-character code: the Go receiver (which checks nothing before the
    join and never asks) receives it; our preview is what the Go server stores as ever."""
    src = _source(tmp_path)
    sender = spawn(["send", str(src)], where.env, main=sender_main(SHORT))
    try:
        code = read_code(sender)
        assert len(code.split("-")[1]) == SHORT, code
        go = spawn_go(["receive", "-output", str(outdir), code], where.env)
        try:
            go_rc, go_out = go_finish(go)
        finally:
            go.close(force=True)
        s = finish(sender, timeout=60)
    finally:
        kill(sender)
    assert (go_rc, s.rc) == (0, 0), go_out + s.err
    assert (outdir / "from-go.txt").read_text() == TEXT


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["interrupted", "killed"])
@pytest.mark.parametrize("go_role", ["sender", "receiver"])
def test_a_go_peer_leaving_mid_connect_is_named(go_role: str, sig: signal.Signals, where: Where,
                                                tmp_path: Path, outdir: Path) -> None:
    """Both sides in an attempt that cannot connect (a TCP-only sender, a WebRTC-only receiver)
    when the Go peer is interrupted or killed: ours says that peer left (exit 6), not 'no
    connection' (4), on either server (both relay `peer-left`)."""
    src = _source(tmp_path)
    ours: subprocess.Popen[bytes] | None = None
    if go_role == "sender":
        go, code = go_sender(["-transport", "tcp", str(src)], where.env, MAX_SEED_CHARS, where.go)
    else:
        ours = spawn(["send", "-transport", "tcp", str(src)], where.env)
        code = read_code(ours)
        go = spawn_go(["receive", "-transport", "webrtc", "-output", str(outdir), code], where.env)
    try:
        if ours is None:
            ours = spawn(["receive", "-yes", "-transport", "webrtc", "-output", str(outdir), code], where.env)
        stderr_until(ours, "Verify:")
        os.kill(go.pid, sig)
        go_finish(go, timeout=30)
        r = finish(ours, timeout=60)
    finally:
        go.close(force=True)
        if ours is not None:
            kill(ours)
    assert r.rc == ExitStatus.TRANSFER, r.err
    assert one_line(r) == f"sp2p: error: the {go_role} left while the two sides were connecting"
    assert list(outdir.iterdir()) == []


@pytest.mark.slow
def test_a_cut_connection_heals_through_the_go_server(src: Path, outdir: Path, tmp_path: Path) -> None:
    """Heal (§2) between two of ours needs nothing from the server but relaying `retry` and
    keeping both WebSockets open: the original Go server does both. Cut on the wire as in
    test_resume_heal.py (over the host's non-loopback address: `ss -K` spares loopback)."""
    with GoServer.running(tmp_path / "go-server") as go:
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        env = {k: v for k, v in cli_env(go.http_url, home).items() if k != "SP2P_ALLOW_LOOPBACK"}

        def attempt() -> tuple[Result, Result, list[tuple[str, str]]]:
            with pair([str(src), "-transport", "tcp", "-debug"],
                      ["-output", str(outdir), "-transport", "tcp", "-debug"], env) as (sender, receiver):
                _wait_grown(outdir, ".sp2p-partial-*", SIZE // 8, (sender, receiver))
                links = cut_all(sender, receiver, go.port, unread=src)
                r = finish(receiver)  # the receiver first: its -debug stderr must not fill the pipe
                return finish(sender), r, links

        s, r, links = until_cut(outdir, attempt)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "Reconnected via" in s.err and "Reconnected via" in r.err, (links, s.err + r.err)
    assert sha256_file(outdir / src.name) == sha256_file(src)
    assert leftovers(outdir) == []


@pytest.mark.slow
def test_a_cut_connection_with_a_go_sender_is_not_healed(src: Path, outdir: Path, env: dict[str, str],
                                                         sp2p_server: ServerProc) -> None:
    """Heal is not negotiated with a Go peer (it announces none): a cut fails the transfer as in
    the original protocol, no reconnect is tried (our receiver closed its WebSocket after the
    connect), and with no resume either, nothing is left in -output."""
    env = {k: v for k, v in env.items() if k != "SP2P_ALLOW_LOOPBACK"}

    def attempt() -> tuple[Result, Result]:
        with pair(["-transport", "tcp", str(src)], ["-output", str(outdir), "-transport", "tcp"], env,
                  send_cmd=[str(GO_CLI), "send"]) as (sender, receiver):
            _wait_grown(outdir, ".sp2p-*", SIZE // 8, (sender, receiver))
            cut_all(sender, receiver, server_port(sp2p_server), unread=src)
            return finish(sender), finish(receiver)

    s, r = until_cut(outdir, attempt)
    assert s.rc != 0 and r.rc == ExitStatus.TRANSFER, s.err + r.err
    one_line(r)  # e.g. "connection closed in the middle of a frame"
    assert "Reconnect" not in r.err, r.err
    assert list(outdir.iterdir()) == []


@pytest.mark.slow
def test_a_go_peer_giving_up_is_no_path_found(tmp_path: Path, outdir: Path, env: dict[str, str]) -> None:
    """A Go receiver that cannot connect: whichever side gives up first (the Go CLI after 30 s:
    'context deadline exceeded'; ours, its first attempt cut to 5 s here: the Go CLI then says
    'signaling connection lost', or 'peer disconnected' once the server told it), both exit non-zero and ours says no path was found (4), not
    that the receiver left (6)."""
    sender = spawn_scripted(["send", "-transport", "tcp", str(_source(tmp_path))], env, first_attempt=5.0)
    try:
        go = spawn_go(["receive", "-transport", "webrtc", "-output", str(outdir), read_code(sender)], env)
        try:
            go_rc, go_out = go_finish(go, timeout=90)
        finally:
            go.close(force=True)
        s = finish(sender, timeout=60)
    finally:
        kill(sender)
    go_says = ("context deadline exceeded", "signaling connection lost", "peer disconnected")
    assert go_rc == 1 and any(words in go_out for words in go_says), go_out
    assert s.rc == ExitStatus.CONNECT, s.err
    assert one_line(s) in ("sp2p: error: could not establish a peer-to-peer connection",
                           "sp2p: error: could not establish a peer-to-peer connection (the receiver gave up too)")
    assert list(outdir.iterdir()) == []


@pytest.mark.parametrize("server_kind", ["our-server", "go-server"])
def test_a_rate_limited_upgrade_says_so(server_kind: str, tmp_path: Path) -> None:
    """Both servers answer 429 to the 31st WebSocket upgrade from one address in a minute: the
    CLI says the server limits this address and to wait, not that the address is no sp2p
    server (exit 3)."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        if server_kind == "go-server":
            url = stack.enter_context(GoServer.running(tmp_path / "go-server")).http_url
        else:
            url = stack.enter_context(start_server("-rate-limit", "30")).http_url
        ws_url = url.replace("http://", "ws://") + "/ws"
        for _ in range(30):
            websocket.create_connection(ws_url, timeout=10).close()
        r = finish(spawn(["send", str(_source(tmp_path))], cli_env(url, home)), timeout=60)
    assert r.rc == ExitStatus.SIGNALING, r.err
    assert one_line(r) == (f"sp2p: error: the signaling server at {ws_url} refused: too many connections "
                           "from this address (HTTP 429)")
    assert "sp2p: hint: wait a minute, then try again" in r.err


def test_a_go_receiver_with_a_mistyped_short_code_uses_the_code_up(where: Where, tmp_path: Path,
                                                                   outdir: Path) -> None:
    """The check before the join is ours only: a Go receiver joins with a mistyped short code,
    key confirmation fails on both sides (ours: exit 5) and the session is spent, as in the
    original protocol."""
    sender = spawn(["send", str(_source(tmp_path))], where.env, main=sender_main(SHORT))
    try:
        code = read_code(sender)
        go = spawn_go(["receive", "-output", str(outdir), _mistyped(code)], where.env)
        try:
            go_rc, go_out = go_finish(go)
        finally:
            go.close(force=True)
        s = finish(sender, timeout=60)
    finally:
        kill(sender)
    assert go_rc == 1, go_out
    assert s.rc == ExitStatus.SECURITY, s.err
    one_line(s)
    assert list(outdir.iterdir()) == []


#: the server's timers scaled down for the slow answer: a ping every second (a missed pong
#: closes the connection) and a session expired after 3 s without traffic, pings included
#: (shipped: 30 s and 5 min)
SLOW_SERVER = ("-ping-interval", "1s", "-session-idle", "3s", "-reaper-interval", "1s")
#: the user reads the offer past several pings and twice the session-idle limit
SLOW_ANSWER = 7.0


@pytest.mark.slow
def test_a_slow_answer_still_receives_from_a_go_sender(tmp_path: Path, outdir: Path) -> None:
    """Our receiver joins, then asks; the Go sender waits for our key however long the user
    reads: both keep answering the server's pings and the session stays. The server's timers
    are scaled down (SLOW_SERVER), so 7 s cross what 25 s on the shipped ones never reached.
    (go_idle reads the Go sender's terminal meanwhile, as a terminal would: its spinner once
    filled an unread pty and blocked it after ~20 s.)"""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    with start_server(*NO_LIMIT_FLAGS, *SLOW_SERVER) as server:
        env = cli_env(server.http_url, home)
        go, code = go_sender([str(_source(tmp_path))], env)
        try:
            child = spawn_tty(["receive", "-output", str(outdir), code], env)
            child.expect(r"Receive it\? \[Y/n\] ")
            go_idle(go, SLOW_ANSWER)  # the user reads the offer
            child.sendline("")
            rc, screen = finish_tty(child)
            go_rc, go_out = go_finish(go, timeout=90)
        finally:
            go.close(force=True)
    assert (rc, go_rc) == (0, 0), screen + go_out

"""The original Go server (../shared/reference/sp2p-server) and Go CLI as real peers, and Go
senders drawn until their code has a chosen length (Go's seed cannot be pinned from outside)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pexpect

from sp2p.proto.codes import CODE_PATTERN
from tests.support.ports import LoopbackUrls, free_port

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
GO_CLI = REFERENCE / "sp2p"
GO_SERVER = REFERENCE / "sp2p-server"
#: Go senders drawn until one's code has the length asked for: a 21-character secret part comes
#: 1 time in 8, so 150 draws all miss with odds of 2e-9
GO_DRAWS = 150
#: the Go server answers 429 after 30 WebSocket connections from one address in a minute:
#: drawing restarts it (a fresh limiter, nothing paired yet) after this many, leaving the rest
#: of the budget to the test's own peers
DRAWS_PER_START = 20


class GoServer(LoopbackUrls):
    """The Go server on a fixed loopback port (kept across restarts, so URLs stay valid)."""

    def __init__(self, workdir: Path) -> None:
        assert GO_SERVER.exists(), f"the Go reference server is part of the environment: {GO_SERVER}"
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / "go-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.connections = 0  #: WebSocket connections drawn since the last start

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(GO_SERVER), "-addr", f"127.0.0.1:{self.port}", "-base-url", self.http_url,
                 "-config-dir", str(self.workdir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self.connections = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the Go server did not listen:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @classmethod
    @contextmanager
    def running(cls, workdir: Path) -> Iterator[GoServer]:
        workdir.mkdir(parents=True, exist_ok=True)
        server = cls(workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def restart(self) -> None:
        self.stop()
        self.start()


def spawn_go(args: list[str], env: dict[str, str], *, timeout: float = 60) -> pexpect.spawn:
    """The Go CLI on a pseudo-terminal (it draws its progress for a terminal)."""
    assert GO_CLI.exists(), f"the Go reference CLI is part of the environment: {GO_CLI}"
    return pexpect.spawn(str(GO_CLI), args, env=env, timeout=timeout, dimensions=(40, 120))


def go_sender(args: list[str], env: dict[str, str], secret_chars: int | None = None,
              go: GoServer | None = None) -> tuple[pexpect.spawn, str]:
    """A waiting Go sender (`sp2p send ARGS`) whose code's secret part has `secret_chars`
    characters (None: any); senders with other codes are closed and drawn again. On the Go
    server `go`, it is restarted every DRAWS_PER_START draws (its rate limit)."""
    for _ in range(GO_DRAWS):
        if go is not None:
            if go.connections >= DRAWS_PER_START:
                go.restart()
            go.connections += 1
        sender = spawn_go(["send", *args], env)
        try:
            sender.expect(CODE_PATTERN.pattern.encode(), timeout=30)
        except BaseException:  # no code (it failed, or timed out): not left running
            sender.close(force=True)
            raise
        code = sender.match.group(0).decode()
        if secret_chars is None or len(code.split("-")[1]) == secret_chars:
            return sender, code
        sender.close(force=True)
    raise AssertionError(f"no Go code with a {secret_chars}-character secret part in {GO_DRAWS} draws")


def go_idle(child: pexpect.spawn, seconds: float) -> None:
    """Let `seconds` pass while reading the Go CLI's terminal: it redraws a spinner all the
    time, and a pty nobody reads fills in about 20 s and blocks it mid-write (which once
    looked like a Go sender that cannot connect after a long wait)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        with suppress(pexpect.TIMEOUT):
            child.expect(pexpect.EOF, timeout=min(left, 1.0))
            return  # it ended: nothing more to read
        child.buffer = child.buffer[-4096:]  # keep the tail only


def go_finish(child: pexpect.spawn, timeout: float = 60) -> tuple[int, str]:
    """Wait for the Go CLI's end: (exit status or 128 + signal, its terminal output as text)."""
    child.expect(pexpect.EOF, timeout=timeout)
    child.close()
    rc = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return rc, (child.before or b"").decode(errors="replace")

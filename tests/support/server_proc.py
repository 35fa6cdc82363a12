"""Start a real `sp2p-server` (gunicorn) subprocess on an ephemeral loopback port.

    proc = start_server("-turn-servers", "turn:127.0.0.1:3478", env={"SP2P_TURN_SECRET": "x"})
    proc.http_url, proc.ws_url, proc.port
    proc.stop()

`start_server` adds `-addr 127.0.0.1:0` unless the flags contain `-addr`, scrapes the real
port from the `Listening at: http(s)://127.0.0.1:PORT` line on stderr, and removes every
inherited `SP2P_*` variable so the host environment cannot change what a test sees.

The session-scoped pytest fixture `sp2p_server` (registered as a plugin by tests/conftest.py)
is one such server with the per-IP limits lifted, because the whole suite connects from
127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"Listening at: (https?)://([^\s:]+|\[[^\]]+\]):(\d+)")

#: flags that lift the per-IP caps for a server shared by many tests on loopback
NO_LIMIT_FLAGS: tuple[str, ...] = (
    "-max-sessions",
    "100000",
    "-max-sessions-per-ip",
    "100000",
    "-max-conns-per-ip",
    "100000",
    "-rate-limit",
    "0",
    "-miss-limit",
    "0",
    "-turn-per-ip-hour",
    "0",
)


class _Log:
    """Lines of the server's stderr, appended by a reader thread."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


class ServerProc:
    """A running sp2p-server. `stderr_text()` returns its log so far."""

    def __init__(self, proc: subprocess.Popen[bytes], log: _Log, scheme: str, host: str, port: int) -> None:
        self.proc = proc
        self.scheme = scheme
        self.host = host
        self.port = port
        self._log = log
        self.pump: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        ws_scheme = "wss" if self.scheme == "https" else "ws"
        return f"{ws_scheme}://{self.host}:{self.port}/ws"

    def stderr_text(self) -> str:
        return self._log.text()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, SIGKILL if needed. Returns the exit status. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pump is not None:
            self.pump.join(5)  # it closes the stderr pipe at EOF
        return self.proc.returncode

    def __enter__(self) -> ServerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_command() -> list[str]:
    """The command line of sp2p-server (`python -m server` runs the same `server.cli:main`)."""
    return [sys.executable, "-m", "server"]


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    base["PYTHONUNBUFFERED"] = "1"
    # this checkout's web UI: an editable install would serve whichever checkout it points at
    base["SP2P_STATIC_DIR"] = str(REPO_ROOT / "static")
    base.update(env or {})
    return base


def start_server(*flags: str, env: Mapping[str, str] | None = None, timeout: float = 20.0,
                 cwd: Path | None = None) -> ServerProc:
    """Start sp2p-server and wait until it listens. Raises RuntimeError with its log if not."""
    args = list(flags)
    if not any(f.lstrip("-").split("=")[0] == "addr" for f in args if f.startswith("-")):
        args = ["-addr", "127.0.0.1:0", *args]
    proc = subprocess.Popen(
        [*server_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(env),
        cwd=cwd or REPO_ROOT,
    )
    log = _Log()
    found: list[tuple[str, str, int]] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        with proc.stderr:  # the pump owns the pipe: closed at EOF, never left to the GC
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace")
                log.append(line)
                match = _LISTENING.search(line)
                if match and not found:
                    found.append((match.group(1), match.group(2).strip("[]"), int(match.group(3))))
                    ready.set()
        ready.set()  # EOF: the process died

    thread = threading.Thread(target=pump, name="sp2p-server-stderr", daemon=True)
    thread.start()
    ready.wait(timeout)
    if not found:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(2)
        raise RuntimeError(f"sp2p-server did not start (exit {proc.returncode}):\n{log.text()[-4000:]}")
    scheme, host, port = found[0]
    server = ServerProc(proc, log, scheme, host, port)
    server.pump = thread
    return server


@pytest.fixture(scope="session")
def sp2p_server() -> Iterator[ServerProc]:
    """One real gunicorn sp2p-server for the whole session, per-IP limits lifted."""
    with start_server(*NO_LIMIT_FLAGS) as server:
        yield server

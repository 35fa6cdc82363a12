"""A real `redis-server` (Debian's) on a loopback port or a Unix socket, for tests.

    with RedisProc.start(tmp_dir) as redis:   # unix socket
        redis.url                              # unix:///tmp/.../redis.sock
    redis = RedisProc.start(tmp_dir, port=0)   # loopback TCP on a free port
    redis.stop(); redis.restart()              # same address again (fault tests)

No persistence (no RDB/AOF files), no protected-mode surprises, bounded memory.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.support.ports import free_port


class RedisProc:
    def __init__(self, workdir: Path, port: int | None) -> None:
        self.workdir = workdir
        self.port = port
        self.sock_path = workdir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, workdir: Path, *, port: int | None = None) -> RedisProc:
        """port None: a Unix socket; 0: a free loopback port."""
        workdir.mkdir(parents=True, exist_ok=True)
        proc = cls(workdir, free_port() if port == 0 else port)
        proc.restart()
        return proc

    @property
    def url(self) -> str:
        if self.port is None:
            return f"unix://{self.sock_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self) -> None:
        args = [
            "redis-server",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--maxmemory",
            "256mb",
            "--maxclients",
            "10000",
        ]
        if self.port is None:
            args += ["--port", "0", "--unixsocket", str(self.sock_path), "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> RedisProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

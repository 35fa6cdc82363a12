"""A real coturn (Debian's `turnserver`) on loopback with REST credentials, for tests.

    server = Coturn(tmp_dir, "--allow-loopback-peers", secret=SECRET)  # answers STUN on return
    server.url                                    # turn:127.0.0.1:PORT?transport=udp
    server.allocate(*rest_credentials(SECRET))    # a turnutils_uclient allocation
    server.stop()
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port


def rest_password(secret: str, username: str) -> str:
    """coturn's use-auth-secret password for `username`: base64 of HMAC-SHA1."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def rest_credentials(secret: str, ttl: int = 300) -> tuple[str, str]:
    """A (username, password) pair valid for `ttl` seconds (the username is the expiry time)."""
    username = str(int(time.time()) + ttl)
    return username, rest_password(secret, username)


def stun_ready(port: int, timeout: float = 10.0) -> None:
    """Wait until a STUN binding request to 127.0.0.1:`port` is answered."""
    tid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(request, ("127.0.0.1", port))
            try:
                if s.recvfrom(2048)[0][8:20] == tid:
                    return
            except OSError:
                pass
    raise RuntimeError("turnserver not ready")


class Coturn:
    """turnserver on 127.0.0.1 (relaying from 127.0.0.1), with `secret` for REST credentials;
    `config` replaces the built-in options (the shipped turnserver.conf)."""

    def __init__(self, tmp: Path, *extra: str, secret: str, config: Path | None = None) -> None:
        self.port = free_port()
        low = random.randrange(50000, 60000, 50)
        args = ["turnserver"]
        args += ["-c", str(config)] if config else [
            "-n", "--realm=sp2p", "--use-auth-secret", "--fingerprint", "--no-tls", "--no-dtls",
            "--no-cli", "--simple-log", "--no-multicast-peers",
        ]  # fmt: skip
        args += [
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
            f"--min-port={low}", f"--max-port={low + 40}", f"--static-auth-secret={secret}",
            f"--userdb={tmp / 'turndb'}", f"--pidfile={tmp / 'turn.pid'}", "--log-file=stdout", *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            stun_ready(self.port)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def allocate(self, username: str, password: str) -> subprocess.Popen[bytes]:
        """turnutils_uclient allocating once with these credentials (output on stdout)."""
        return subprocess.Popen(
            ["turnutils_uclient", "-y", "-n", "1", "-p", str(self.port), "-u", username, "-w", password,
             "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

"""ACME issuance (HTTP-01) against a real local ACME server (Debian `pebble`)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.helpers import http_get, wait_until
from tests.server.tlsutil import served_certificate, write_self_signed
from tests.support.ports import free_port
from tests.support.server_proc import clean_env, server_command, start_server

pytestmark = pytest.mark.slow


@dataclass
class Pebble:
    directory: str
    ca_file: Path  # verifies pebble's own HTTPS listener
    http_port: int  # where pebble connects for HTTP-01
    management: int

    def root(self, dest: Path) -> Path:
        """The (per-run) issuing root, to verify certificates pebble issued."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{self.management}/roots/0", context=context, timeout=10
        ) as response:
            dest.write_bytes(response.read())
        return dest


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    assert shutil.which("pebble"), "apt package pebble is required"
    work = tmp_path / "pebble"
    work.mkdir()
    write_self_signed(work / "cert.pem", work / "key.pem")
    listen, management, http_port, tls_port = (free_port() for _ in range(4))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(work / "cert.pem"),
            "privateKey": str(work / "key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    proc = subprocess.Popen(
        ["pebble", "-config", str(work / "config.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    directory = f"https://127.0.0.1:{listen}/dir"
    context = ssl.create_default_context(cafile=str(work / "cert.pem"))

    def ready() -> bool:
        try:
            with urllib.request.urlopen(directory, context=context, timeout=2):
                return True
        except OSError:
            return False

    try:
        assert wait_until(ready, timeout=15), "pebble did not start"
        yield Pebble(directory, work / "cert.pem", http_port, management)
    finally:
        proc.terminate()
        proc.wait(10)


def acme_flags(pebble: Pebble, config_dir: Path) -> list[str]:
    return [
        "-acme",
        "-config-dir",
        str(config_dir),
        "-base-url",
        "https://localhost",
        "-acme-directory",
        pebble.directory,
        "-acme-ca-file",
        str(pebble.ca_file),
        "-acme-http-addr",
        f"127.0.0.1:{pebble.http_port}",
        "-acme-email",
        "ops@example.org",
        "-rate-limit",
        "0",
    ]


def test_issuance_then_https_with_that_certificate(pebble: Pebble, tmp_path: Path) -> None:
    config_dir = tmp_path / "state"
    server = start_server(*acme_flags(pebble, config_dir), timeout=60)
    try:
        assert server.scheme == "https"
        root = pebble.root(tmp_path / "root.pem")
        leaf = served_certificate(server.port, cafile=root)  # verifies chain and hostname
        assert "Pebble" in leaf.issuer.rfc4514_string()
        context = ssl.create_default_context(cafile=str(root))
        with urllib.request.urlopen(
            f"https://localhost:{server.port}/health", context=context, timeout=10
        ) as response:
            assert response.read() == b"ok"
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        host_dir = config_dir / "acme" / "localhost"
        assert (host_dir / "fullchain.pem").read_text().count("BEGIN CERTIFICATE") >= 2
        assert (host_dir / "privkey.pem").stat().st_mode & 0o777 == 0o600
        assert (config_dir / "acme" / "account.pem").stat().st_mode & 0o777 == 0o600
        # the HTTP-01 listener sends everything else to https
        base = f"http://127.0.0.1:{pebble.http_port}"
        status, headers, _ = http_get(base + "/r?x=1")
        assert (status, headers["Location"]) == (302, "https://localhost/r?x=1")
        assert http_get(base + "/", method="POST")[0] == 400
        assert http_get(base + "/.well-known/acme-challenge/unknown")[0] == 404
    finally:
        server.stop()


def test_renewal_before_expiry_is_picked_up_live(pebble: Pebble, tmp_path: Path) -> None:
    """A certificate inside the renewal window is replaced and served without a restart."""
    server = start_server(
        *acme_flags(pebble, tmp_path / "state"),
        "-acme-renew-before",
        "100000h",
        "-acme-check-interval",
        "1s",
        "-cert-check-interval",
        "300ms",
        timeout=60,
    )
    try:
        root = pebble.root(tmp_path / "root.pem")
        first = served_certificate(server.port, cafile=root).serial_number
        assert wait_until(
            lambda: served_certificate(server.port, cafile=root).serial_number != first,
            timeout=40,
            interval=0.3,
        )
    finally:
        server.stop()


def test_acme_failure_is_a_one_line_startup_error(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [
            *server_command(),
            "-addr",
            "127.0.0.1:0",
            "-acme",
            "-config-dir",
            str(tmp_path),
            "-base-url",
            "https://localhost",
            "-acme-directory",
            f"https://127.0.0.1:{port}/dir",
            "-acme-http-addr",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sp2p-server: ACME: could not obtain a certificate")
    assert "Traceback" not in proc.stderr

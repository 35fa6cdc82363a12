"""Through REAL gunicorn: `sp2p-server -addr 127.0.0.1:0` as a subprocess."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import websocket

from tests.server.helpers import Client, hello, http_get, pair, wait_until
from tests.server.tlsutil import served_certificate, write_self_signed
from tests.support.polling import stays
from tests.support.server_proc import REPO_ROOT, ServerProc, clean_env, start_server


def test_choreography_through_gunicorn(sp2p_server: ServerProc) -> None:
    assert "Listening at: http://127.0.0.1:" in sp2p_server.stderr_text()
    url = sp2p_server.ws_url
    sender, sid, welcome = hello(url)
    assert welcome["baseUrl"] == sp2p_server.http_url
    sender.send("file-info", {"data": "YmxvYg=="})
    receiver = Client(url)
    receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "browser"})
    receiver.send("crypto", {"publicKey": "cg=="})
    assert receiver.expect("welcome")["peerClientType"] == "cli"
    assert sender.expect("peer-joined") == {"clientType": "browser"}
    assert sender.expect("crypto") == {"publicKey": "cg=="}
    status, _, body = http_get(f"{sp2p_server.http_url}/api/file-info/{sid}")
    assert (status, body) == (200, b'{"data":"YmxvYg=="}\n')
    text = '{"type":"offer","payload":{"sdp":"v=0\\r\\n","type":"offer"},"z":1}'
    sender.send_raw(text)
    assert receiver.recv_text() == text
    intruder = Client(url)
    intruder.send("join", {"version": 2, "sessionId": sid})
    assert intruder.expect("error")["code"] == "session_full"
    wrong = Client(url)
    wrong.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
    assert wrong.expect("error")["code"] == "session_not_found"
    receiver.close()  # v2: close after P2P
    assert sender.expect("peer-left") == {}
    assert http_get(f"{sp2p_server.http_url}/api/file-info/{sid}")[0] == 404


def test_version_mismatch_and_oversize_through_gunicorn(sp2p_server: ServerProc) -> None:
    sender, sid, _ = hello(sp2p_server.ws_url, version=1)
    wrong = Client(sp2p_server.ws_url)
    wrong.send("join", {"version": 2, "sessionId": sid})
    assert wrong.expect("error")["message"] == "protocol version mismatch with sender"
    assert sender.expect("notice")["code"] == "peer_version_mismatch"
    s2, r2, _ = pair(sp2p_server.ws_url)
    s2.send_raw(json.dumps({"type": "offer", "payload": {"sdp": "x" * 70_000}}))
    assert s2.closed_within(3)
    assert r2.expect("peer-left") == {}


def test_http_surface_through_gunicorn(sp2p_server: ServerProc) -> None:
    assert http_get(sp2p_server.http_url + "/health")[2] == b"ok"
    script = http_get(sp2p_server.http_url + "/", {"User-Agent": "curl/8"})[2].decode()
    assert f"sp2p_base='{sp2p_server.http_url}'" in script
    page = http_get(sp2p_server.http_url + "/", {"Accept": "text/html"})
    assert page[0] == 200 and "frame-ancestors 'none'" in page[1]["Content-Security-Policy"]
    assert http_get(sp2p_server.http_url + "/ws")[0] == 426


@pytest.mark.slow
def test_one_worker_env_config_and_clean_sigterm() -> None:
    server = start_server(
        env={"SP2P_MAX_SESSIONS_PER_IP": "1", "SP2P_TRUST_PROXY": "false", "SP2P_RATE_LIMIT": "0"}
    )
    try:

        def children() -> list[str]:
            return subprocess.run(
                ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
            ).stdout.split()

        assert wait_until(lambda: len(children()) == 1)
        assert stays(lambda: len(children()) == 1, 0.5)  # exactly one worker: the registry is in memory
        sender, receiver, _ = pair(server.ws_url, headers={"X-Forwarded-For": "1.2.3.4"})
        second = Client(server.ws_url, headers={"X-Forwarded-For": "5.6.7.8"})
        second.send("hello", {"version": 2})
        assert second.expect("error")["code"] == "rate_limited"  # XFF ignored: trust is off
        waiting = Client(server.ws_url)  # connected, no hello yet
        server.proc.send_signal(signal.SIGTERM)
        for client in (sender, receiver, waiting):
            assert client.closed_within(8)
        assert server.proc.wait(15) == 0
        assert "Traceback" not in server.stderr_text()
    finally:
        server.stop()


@pytest.mark.slow
def test_trust_proxy_through_gunicorn() -> None:
    server = start_server("-trust-proxy", "-max-sessions-per-ip", "1", "-rate-limit", "0")
    try:
        first, _, _ = hello(server.ws_url, headers={"X-Forwarded-For": "spoofed, 1.2.3.4"})
        second, _, _ = hello(server.ws_url, headers={"X-Forwarded-For": "spoofed, 5.6.7.8"})
        third = Client(server.ws_url, headers={"X-Forwarded-For": "5.6.7.8, 1.2.3.4"})
        third.send("hello", {"version": 2})
        assert third.expect("error")["code"] == "rate_limited"
    finally:
        server.stop()


@pytest.mark.slow
def test_tls_with_certificate_files_and_reload(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first_serial = write_self_signed(cert, key)
    server = start_server(
        "-tls-cert",
        str(cert),
        "-tls-key",
        str(key),
        "-base-url",
        "https://localhost",
        "-cert-check-interval",
        "200ms",
        "-rate-limit",
        "0",
    )
    try:
        assert server.scheme == "https"
        assert served_certificate(server.port, cert).serial_number == first_serial
        context = ssl.create_default_context(cafile=str(cert))
        ws = websocket.create_connection(
            f"wss://localhost:{server.port}/ws", sslopt={"context": context}, suppress_origin=True, timeout=5
        )
        ws.send('{"type":"hello","payload":{"version":2}}')
        welcome = json.loads(ws.recv())
        assert welcome["payload"]["baseUrl"] == "https://localhost"
        ws.close()
        # replace the files: new connections get the new certificate, no restart
        time.sleep(0.05)
        new_cert, new_key = tmp_path / "n.pem", tmp_path / "nk.pem"
        second_serial = write_self_signed(new_cert, new_key)
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        assert wait_until(lambda: served_certificate(server.port).serial_number == second_serial, timeout=10)
        # HSTS under TLS
        response = served_headers(server.port, cert)
        assert "max-age=31536000" in response
    finally:
        server.stop()


def served_headers(port: int, cafile: Path) -> str:
    import http.client

    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.headers.get("Strict-Transport-Security", "")


#: what pip's console-script wrapper does, from the entry point's own text (not pip's install)
_RUN_ENTRY_POINT = """
import sys
from importlib.metadata import EntryPoint
main = EntryPoint(name="sp2p-server", value=sys.argv.pop(1), group="console_scripts").load()
print(sys.modules[main.__module__].__file__, file=sys.stderr)
sys.argv[0] = "sp2p-server"
sys.exit(main())
"""


def test_console_script_is_installed(tmp_path: Path) -> None:
    """`sp2p-server` is declared, installed under that name, and its entry point runs this checkout.

    Independent of where `pip install -e` points (CI re-points it; a second checkout would not):
    the installed metadata must name the entry point pyproject declares, and that entry point,
    loaded the way pip's wrapper loads it, runs this checkout's code."""
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert declared.get("sp2p-server") == "server.cli:main"
    installed = importlib.metadata.entry_points(group="console_scripts", name="sp2p-server")
    assert [ep.value for ep in installed] == [declared["sp2p-server"]], (
        "pip install -e '.[dev]' provides the sp2p-server console script"
    )
    result = subprocess.run(
        [sys.executable, "-c", _RUN_ENTRY_POINT, declared["sp2p-server"], "-version"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path, env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sp2p-server ")
    assert Path(result.stderr.strip()).is_relative_to(REPO_ROOT / "server"), result.stderr


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_slow_clients_and_oversize_floods_do_not_starve_the_server() -> None:
    """S7: 300 sockets trickling headers or never finishing the upgrade; S4: repeated
    oversize messages. /health and a fresh session still work and RSS stays bounded."""
    import socket

    server = start_server("-rate-limit", "0", "-max-conns-per-ip", "1000")
    slow: list[socket.socket] = []
    try:
        assert wait_until(
            lambda: (
                subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout
                != ""
            )
        )
        worker = int(
            subprocess.run(
                ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
            ).stdout.split()[0]
        )
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"G")
            slow.append(s)
        assert http_get(server.http_url + "/health")[2] == b"ok"
        sender, receiver, _ = pair(server.ws_url)
        sender.send("crypto", {"publicKey": "k"})
        assert receiver.expect("crypto") == {"publicKey": "k"}
        before = _rss_kib(worker)
        for _ in range(40):
            c = Client(server.ws_url)
            with contextlib.suppress(websocket.WebSocketException, OSError):
                c.ws.send("x" * 300_000)
            assert c.closed_within(3)
        assert _rss_kib(worker) - before < 32 * 1024  # no per-attempt growth worth a message
        assert http_get(server.http_url + "/health")[2] == b"ok"
    finally:
        for s in slow:
            s.close()
        server.stop()

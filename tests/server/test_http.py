"""HTTP surface: page/script negotiation, bootstrap rendering, headers, static, /dl."""

from __future__ import annotations

import hashlib
import http.client
import subprocess
from pathlib import Path

import pytest

from tests.server.conftest import RELAXED
from tests.server.helpers import LiveServer, http_get, live_server

CSP_PREFIX = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' "
)
CSP_SUFFIX = "; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("headers", "script"),
    [
        ({"User-Agent": "curl/8.5.0"}, True),
        ({"User-Agent": "Wget/1.21.4"}, True),
        ({"User-Agent": "HTTPie/3.2.2"}, True),
        ({"User-Agent": "libcurl/8.0"}, True),
        ({"User-Agent": "Mozilla/5.0", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, False),
        ({"User-Agent": "curl/8.5.0", "Accept": "text/html"}, False),
        ({"User-Agent": "whatever", "Accept": "application/json"}, True),
        ({}, True),
    ],
)
@pytest.mark.parametrize(
    ("path", "script_marker"), [("/", "sp2p_command=send"), ("/r", "sp2p_command=receive")]
)
def test_page_or_script(
    server: LiveServer, headers: dict[str, str], script: bool, path: str, script_marker: str
) -> None:
    status, response_headers, body = http_get(server.http_url + path, headers)
    assert status == 200
    if script:
        assert response_headers["Content-Type"] == "text/plain; charset=utf-8"
        assert script_marker in body.decode()
    else:
        assert response_headers["Content-Type"] == "text/html; charset=utf-8"
        assert body.lstrip().lower().startswith(b"<!doctype html>")


def test_scripts_carry_the_base_url(server: LiveServer) -> None:
    modes = {"/": "sp2p_command=send\n", "/r": "sp2p_command=receive\n",
             "/ps": "$Sp2pCommand = 'send'\n", "/ps/r": "$Sp2pCommand = 'receive'\n"}  # fmt: skip
    for path, mode in modes.items():  # one template per shell, rendered with the path's mode
        body = http_get(server.http_url + path)[2].decode()
        assert "@@SP2P_" not in body
        assert f"'{server.http_url}'" in body
        assert mode in body
    with live_server({**RELAXED, "base_url": "https://sp2p.example/"}) as configured:
        body = http_get(configured.http_url + "/")[2].decode()
        assert "sp2p_base='https://sp2p.example'" in body


def test_shell_unsafe_host_header_is_refused(server: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/", headers={"Host": "x$(touch /tmp/pwned)"})
    response = conn.getresponse()
    assert response.status == 400
    assert b"$(" not in response.read()
    conn.close()


def test_missing_bootstrap_scripts_fail_closed(tmp_path: Path) -> None:
    with live_server({**RELAXED, "bootstrap_dir": tmp_path}) as srv:
        status, _, body = http_get(srv.http_url + "/")
        assert status == 200 and b"bootstrap script not installed" in body
        result = subprocess.run(["sh"], input=body, capture_output=True, timeout=10)
        assert result.returncode == 1
        assert b"bootstrap script not installed" in result.stderr
        assert b"not installed" in http_get(srv.http_url + "/ps")[2]


def test_page_headers_and_placeholders(server: LiveServer) -> None:
    status, headers, body = http_get(server.http_url + "/r", {"Accept": "text/html"})
    assert status == 200
    host = f"127.0.0.1:{server.port}"
    assert headers["Content-Security-Policy"] == (CSP_PREFIX + f"ws://{host} wss://{host}" + CSP_SUFFIX)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers  # plain HTTP
    assert b"<!--SP2P_VERSION-->" not in body


def test_placeholder_pages_when_the_ui_is_missing(tmp_path: Path) -> None:
    with live_server({**RELAXED, "static_dir": tmp_path}) as srv:
        status, headers, body = http_get(srv.http_url + "/", {"Accept": "text/html"})
        assert status == 200 and b"not installed" in body
        assert "Content-Security-Policy" in headers
        assert http_get(srv.http_url + "/static/x.js")[0] == 404


def test_tls_mode_headers() -> None:
    config = {
        **RELAXED,
        "tls_cert": "/nonexistent/c",
        "tls_key": "/nonexistent/k",
        "base_url": "https://sp2p.example",
    }
    with live_server(config) as srv:
        headers = http_get(srv.http_url + "/", {"Accept": "text/html"})[1]
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
        assert headers["Content-Security-Policy"] == (CSP_PREFIX + "wss://sp2p.example" + CSP_SUFFIX)


def test_not_found_is_plain_and_has_headers(server: LiveServer) -> None:
    status, headers, body = http_get(server.http_url + "/nope")
    assert status == 404 and body == b"404 page not found\n"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith(CSP_PREFIX)


def test_health(server: LiveServer) -> None:
    status, headers, body = http_get(server.http_url + "/health")
    assert (status, body) == (200, b"ok")
    assert headers["Content-Type"].startswith("text/plain")


def test_static_files_and_caching(server: LiveServer) -> None:
    status, headers, body = http_get(server.http_url + "/static/style.css")
    assert status == 200 and body
    assert headers["Cache-Control"] == "no-cache" and "ETag" in headers
    again = http_get(server.http_url + "/static/style.css", {"If-None-Match": headers["ETag"]})
    assert again[0] == 304
    js = http_get(server.http_url + "/static/js/crypto.js")[1]
    assert js["Content-Type"].startswith("text/javascript")
    for path in (
        "/static/../server/config.py",
        "/static/%2e%2e/server/config.py",
        "/static/js/../../server/config.py",
        "/static/",
    ):
        assert http_get(server.http_url + path)[0] == 404, path


def test_hashed_assets_are_immutable(tmp_path: Path) -> None:
    (tmp_path / "main-ABCDEFGH.js").write_text("1")
    (tmp_path / "app.js").write_text("2")
    with live_server({**RELAXED, "static_dir": tmp_path}) as srv:
        hashed = http_get(srv.http_url + "/static/main-ABCDEFGH.js")[1]
        assert hashed["Cache-Control"] == "public, max-age=31536000, immutable"
        assert http_get(srv.http_url + "/static/app.js")[1]["Cache-Control"] == "no-cache"


def test_service_worker_scope(server: LiveServer) -> None:
    status, headers, _ = http_get(server.http_url + "/sw.js")
    assert status == 200
    assert headers["Service-Worker-Allowed"] == "/"
    assert headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        ("/dl/linux/amd64", 302, "/sp2p_linux_amd64.tar.gz"),
        ("/dl/darwin/arm64", 302, "/sp2p_darwin_arm64.tar.gz"),
        ("/dl/windows/amd64", 302, "/sp2p_windows_amd64.zip"),
        ("/dl/sp2p-linux-amd64", 302, "/sp2p-linux-amd64"),
        ("/dl/sp2p-linux-amd64.sha256", 302, "/sp2p-linux-amd64.sha256"),
        ("/dl/sp2p_0.3.0_amd64.deb", 302, "/sp2p_0.3.0_amd64.deb"),
        ("/dl/checksums.txt", 302, "/checksums.txt"),
        ("/dl/freebsd/amd64", 404, None),
        ("/dl/linux/386", 404, None),
        ("/dl/evil.tar.gz", 400, None),
        ("/dl/sp2p..tar.gz", 400, None),
        ("/dl/sp2p_x.exe.txt", 400, None),
        ("/dl/a/b/c", 400, None),
        ("/dl/linux/amd64/", 400, None),
    ],
)
def test_download_redirects(path: str, status: int, location: str | None) -> None:
    with live_server({**RELAXED, "dl_url": "https://dl.example/rel/"}) as srv:
        got_status, headers, _ = http_get(srv.http_url + path)
        assert got_status == status
        if location is not None:
            assert headers["Location"] == "https://dl.example/rel" + location


def test_downloads_from_a_local_directory(tmp_path: Path) -> None:
    binary = tmp_path / "sp2p-linux-amd64"
    binary.write_bytes(b"\x7fELF fake binary")
    (tmp_path / "sp2p_linux_amd64.tar.gz").write_bytes(b"tarball")
    (tmp_path / "sp2p-darwin-arm64").write_bytes(b"mach-o")
    (tmp_path / "sp2p-darwin-arm64.sha256").write_text("f" * 64 + "  sp2p-darwin-arm64\n")
    (tmp_path / "notes.txt").write_text("not served")
    with live_server({**RELAXED, "dl_dir": tmp_path}) as srv:
        status, headers, body = http_get(srv.http_url + "/dl/sp2p-linux-amd64")
        assert (status, body) == (200, b"\x7fELF fake binary")
        assert "attachment" in headers["Content-Disposition"]
        digest = hashlib.sha256(b"\x7fELF fake binary").hexdigest()
        assert (
            http_get(srv.http_url + "/dl/sp2p-linux-amd64.sha256")[2]
            == f"{digest}  sp2p-linux-amd64\n".encode()
        )
        # a published checksum file wins over computing one
        assert http_get(srv.http_url + "/dl/sp2p-darwin-arm64.sha256")[2].startswith(b"ffff")
        assert http_get(srv.http_url + "/dl/linux/amd64")[2] == b"tarball"
        sums = http_get(srv.http_url + "/dl/checksums.txt")[2].decode().splitlines()
        assert f"{digest}  sp2p-linux-amd64" in sums
        assert not any("notes.txt" in line for line in sums)
        assert http_get(srv.http_url + "/dl/sp2p-windows-amd64.exe")[0] == 404
        assert http_get(srv.http_url + "/dl/notes.txt")[0] == 400

"""The server URL a new user gives the real CLI: one that does not parse or names no usable
host, nothing listening on this machine, and both TLS mismatches against a real server. Each
ends in one line on stderr and its exit status (tests/e2e/test_cli_edges.py has the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import finish, spawn
from tests.e2e.test_cli_edges import one_line
from tests.server.tlsutil import write_self_signed
from tests.support.ports import refusing_port
from tests.support.server_proc import ServerProc, start_server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("-server", "http://[::1", "server URL 'http://[::1' is not a valid URL: Invalid IPv6 URL"),
    ("-server", "http://h\udcff", "server URL 'http://h\\\\udcff' has an invalid host name"),  # argv byte 0xff
    ("-server", "http://a..b", "server URL 'http://a..b' has an invalid host name"),
    ("-url", "http://h\udcff", "invalid share URL 'http://h\\\\udcff': use http(s)://host[:port]"),
])
def test_server_url_that_cannot_work(flag: str, value: str, message: str, env: dict[str, str],
                                     tmp_path: Path) -> None:
    """These were 'unexpected error' (exit 1): urlsplit's ValueError, the IDNA codec's UnicodeError."""
    src = tmp_path / "a.txt"
    src.write_text("a")
    r = finish(spawn(["send", flag, value, str(src)], env))
    assert r.rc == ExitStatus.USAGE
    assert one_line(r) == f"sp2p: error: {message}"


def test_no_server_on_this_machine_says_how_to_start_one(env: dict[str, str]) -> None:
    """What a newcomer meets first: nothing listens at the default http://localhost:8080."""
    with refusing_port() as port:
        r = finish(spawn(["receive", "-server", f"http://localhost:{port}", "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"],
                         env))
    assert r.rc == ExitStatus.SIGNALING
    assert one_line(r).endswith("Connection refused")
    assert r.err.splitlines()[-1] == ("sp2p: hint: no server listens there: start one with sp2p-server, "
                                      "or name another (-server, SP2P_SERVER)")


def test_https_to_a_plain_http_server(env: dict[str, str], sp2p_server: ServerProc, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("a")
    r = finish(spawn(["send", "-server", f"https://127.0.0.1:{sp2p_server.port}", str(src)], env))
    assert r.rc == ExitStatus.SIGNALING
    assert one_line(r).endswith("it does not speak TLS on that port (an http:// server?)")


def test_a_tls_server_with_an_untrusted_certificate_or_dialled_as_http(env: dict[str, str],
                                                                       tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    server = start_server("-tls-cert", str(cert), "-tls-key", str(key))
    code = "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"
    try:
        untrusted = finish(spawn(["receive", "-server", f"https://127.0.0.1:{server.port}", code], env))
        plain = finish(spawn(["receive", "-server", f"http://127.0.0.1:{server.port}", code], env))
    finally:
        server.stop()
    assert untrusted.rc == plain.rc == ExitStatus.SIGNALING
    assert "its TLS certificate is not trusted (self-signed certificate)" in one_line(untrusted)
    assert one_line(plain).endswith("Connection reset by peer (an https:// server?)")

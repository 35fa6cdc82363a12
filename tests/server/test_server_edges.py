"""`sp2p-server` given bad or odd input: each a one-line error naming what to fix and exit
status 1 (server/cli.py's table), never a traceback and never a server that starts broken."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.cli import build_config
from server.config import ConfigError
from tests.server.tlsutil import write_self_signed
from tests.support.redis_proc import RedisProc
from tests.support.server_proc import clean_env, server_command, start_server


def startup_error(*flags: str) -> str:
    """The one line the server printed when it refused to start with `flags`."""
    proc = subprocess.run([*server_command(), "-addr", "127.0.0.1:0", *flags], capture_output=True,
                          text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("sp2p-server: ")
    return proc.stderr.strip().removeprefix("sp2p-server: ")


def test_a_static_dir_that_is_not_there(tmp_path: Path) -> None:
    assert startup_error("-static-dir", str(tmp_path / "ui")) == f"-static-dir is not a directory: {tmp_path / 'ui'}"


def test_a_config_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "state"
    afile.write_text("")
    assert startup_error("-config-dir", str(afile)) == f"-config-dir is not a directory: {afile}"


def test_a_missing_certificate_or_key_is_named(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key)
    missing = tmp_path / "nope.pem"
    assert startup_error("-tls-cert", str(missing), "-tls-key", str(key)) == (
        f"cannot load the TLS certificate: -tls-cert {missing}: No such file or directory")
    assert startup_error("-tls-cert", str(cert), "-tls-key", str(missing)) == (
        f"cannot load the TLS certificate: -tls-key {missing}: No such file or directory")


def test_a_key_of_another_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    other_cert, other_key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    write_self_signed(cert, key)
    write_self_signed(other_cert, other_key)
    assert startup_error("-tls-cert", str(cert), "-tls-key", str(other_key)) == (
        f"cannot load the TLS certificate: {cert} and {other_key} are not a PEM certificate chain "
        "and its private key (KEY_VALUES_MISMATCH)")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/abc", "rediss://h/0/1", "redis://h/-1"])
def test_a_redis_path_that_is_not_a_database_number(url: str) -> None:
    """redis-py would quietly use database 0."""
    with pytest.raises(ConfigError, match=r"^-redis: the path must be a database number"):
        build_config(["-redis", url], {})
    build_config(["-redis", "redis://h:6379/3"], {})
    build_config(["-redis", "redis://h"], {})


def test_an_unknown_redis_url_option(redis_server: RedisProc) -> None:
    line = startup_error("-redis", f"{redis_server.url}?colour=blue")
    assert line.startswith(f"-redis {redis_server.url}?colour=blue: unsupported URL option"), line
    assert "'colour'" in line


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[Path]:
    """A real redis-server on a Unix socket that wants the password 's3cret'."""
    sock = tmp_path / "locked.sock"
    proc = subprocess.Popen(
        ["redis-server", "--save", "", "--appendonly", "no", "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--requirepass", "s3cret", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield sock
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("userinfo", ["", ":@"], ids=["none", "empty"])
def test_a_redis_that_wants_a_password_and_gets_none(locked_redis: Path, userinfo: str) -> None:
    """Redis's own answer is a 261-character line about HELLO and AUTH. An empty password is
    none (redis-py sends no AUTH), not a wrong one."""
    line = startup_error("-redis", f"unix://{userinfo}{locked_redis}")
    assert line.endswith(f"{locked_redis} wants a password (put it in the URL: redis://:PASSWORD@host:port/0)"), line


@pytest.mark.parametrize("userinfo", [":wrong", "bob:s3cret"])
def test_a_redis_that_refuses_the_password(locked_redis: Path, userinfo: str) -> None:
    user = userinfo.split(":")[0]
    line = startup_error("-redis", f"unix://{userinfo}@{locked_redis}")
    assert line == (f"Redis at unix://{user}:***@{locked_redis} refused the password in the URL "
                    "(wrong password, or a user name it does not know)")


def test_workers_start_without_gevents_warning_about_redis_asyncio(redis_server: RedisProc) -> None:
    """`import redis` loads redis.asyncio before the workers patch ssl; nothing uses it, so
    the two-line MonkeyPatchWarning per worker only alarmed a new operator."""
    server = start_server("-redis", redis_server.url, "-redis-prefix", "edges", "-workers", "2")
    try:
        # a worker answers only once patched: a dozen new connections reach both (steered by
        # source port) unless 1 in 2,048
        for _ in range(12):
            with urllib.request.urlopen(f"{server.http_url}/health", timeout=30) as answer:
                assert answer.read() == b"ok"
        time.sleep(0.5)  # the log is read by a pump thread
        log = server.stderr_text()
    finally:
        server.stop()
    assert log.count("Booting worker") >= 2, log
    assert "MonkeyPatchWarning" not in log, log


@pytest.mark.parametrize(("flags", "named"), [(["-addr", ":abc"], "-addr"),
                                              (["-acme-http-addr", "[::1"], "-acme-http-addr")])
def test_a_bad_listen_address_names_its_flag(flags: list[str], named: str, tmp_path: Path) -> None:
    acme = ["-acme", "-config-dir", str(tmp_path), "-base-url", "https://sp2p.example"]
    with pytest.raises(ConfigError, match=rf"^{named}: invalid listen address '[^']*' \(want host:port or :port\)$"):
        build_config([*acme, *flags], {})


def test_the_challenge_responder_names_its_own_flag() -> None:
    """Validated at start already; should the responder ever get an unchecked address, the
    error still names -acme-http-addr, not -addr."""
    from server.acme_client import ChallengeServer

    with pytest.raises(ConfigError, match=r"^-acme-http-addr: invalid listen address ':abc'"):
        ChallengeServer(":abc", "https://sp2p.example")


def test_the_man_page_lists_the_exit_statuses_main_returns(capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    page = (Path(__file__).resolve().parents[2] / "packaging" / "man" / "sp2p-server.1").read_text()
    section = page.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
    assert re.findall(r"^\.B (\d+)$", section, re.M) == ["0", "1", "2"]
    assert main(["-no-such-flag"]) == 2
    assert main(["-workers", "-1"]) == 1
    assert main(["-version"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(("flags", "message"), [
    (["-acme-directory", "ftp://x"], "-acme-directory must be an http(s) URL: 'ftp://x'"),
    (["-acme-ca-file", "/nonexistent/ca.pem"], "-acme-ca-file is not a file: /nonexistent/ca.pem"),
    (["-acme-email", "not-an-address"], "-acme-email is not an e-mail address: 'not-an-address'"),
])
def test_acme_settings_that_could_never_work(flags: list[str], message: str, tmp_path: Path) -> None:
    """They used to fail only once the ACME client ran: 'could not obtain a certificate: No
    connection adapters were found for ...' and the like."""
    acme = ["-acme", "-config-dir", str(tmp_path), "-base-url", "https://sp2p.example"]
    with pytest.raises(ConfigError) as caught:
        build_config([*acme, *flags], {})
    assert str(caught.value) == message
    build_config([*acme, "-acme-email", "ops@sp2p.example"], {})


@pytest.mark.parametrize(("flags", "message"), [
    (["-base-url", "https://[sp2p"], "-base-url is not a valid URL (Invalid IPv6 URL)"),
    (["-redis", "redis://:secret@[h"], "-redis is not a valid URL (Invalid IPv6 URL)"),
    (["-acme", "-config-dir", "/tmp", "-base-url", "https://[sp2p"], "-base-url is not a valid URL (Invalid IPv6 URL)"),
])
def test_a_url_that_does_not_parse(flags: list[str], message: str) -> None:
    """urlsplit's ValueError escaped main's ConfigError handler as a traceback."""
    with pytest.raises(ConfigError) as caught:
        build_config(flags, {})
    assert str(caught.value) == message
    assert "secret" not in message


def test_odd_values_for_every_flag_are_usage_or_configuration_errors() -> None:
    """Anything else escapes main's handlers as a traceback (as the unparsable URLs above did)."""
    from server.flags import FLAGS, UsageError

    odd = ["", " ", "-1", "0", "99999999999999999999", "1e3", "nan", "inf", "\udcff", "http://[", "://",
           "1h1h", "\u0663", "0x10", "+3", "true", "-5s", "1ns", "9999999h", "redis://[", "unix://",
           "rediss://h:99999/0", "[::1]:80", "::1:80", ":", "a:b:c", "https://h/x?y", "stun:", "turn:h,", ","]
    refused = 0
    for flag in FLAGS:
        for value in odd:
            try:
                build_config([f"-{flag.name}={value}"], {})
            except (UsageError, ConfigError):
                refused += 1
    assert refused > len(FLAGS) * len(odd) // 2  # most are refused; none in another way

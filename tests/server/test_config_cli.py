"""Flags, environment and validation of sp2p-server (server-web.md §4.1, W-7, W-24)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.cli import build_config, main
from server.config import ConfigError, ServerConfig
from server.flags import (
    HelpRequested,
    UsageError,
    parse_args,
    parse_bool,
    parse_duration,
)
from tests.support.server_proc import clean_env, server_command


def test_defaults_plain_http_in_memory() -> None:
    config = build_config([], {})
    assert config.addr == ":8080"
    assert not config.tls
    assert config.config_dir is None and config.base_url is None
    assert config.max_sessions == 1000 and config.max_sessions_per_ip == 10
    assert config.session_idle == 300 and config.session_max_age == 3600
    assert config.turn_ttl == 300 and config.turn_delay == 5


def test_single_and_double_dash_and_equals() -> None:
    a = build_config(["-base-url", "https://a.example", "--max-sessions=7"], {})
    assert a.base_url == "https://a.example" and a.max_sessions == 7
    b = build_config(["--trust-proxy", "-turn-ttl=90s", "-session-idle", "1m30s"], {})
    assert b.trust_proxy and b.turn_ttl == 90 and b.session_idle == 90


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("F", False), ("TRUE", True)],
)
def test_booleans_parse_properly(text: str, value: bool) -> None:
    assert parse_bool(text) is value
    assert build_config([f"-trust-proxy={text}"], {}).trust_proxy is value
    assert build_config([], {"SP2P_TRUST_PROXY": text}).trust_proxy is value  # W-7 fixed


def test_flag_beats_environment() -> None:
    config = build_config(
        ["-trust-proxy=false", "-max-sessions", "3"], {"SP2P_TRUST_PROXY": "true", "SP2P_MAX_SESSIONS": "9"}
    )
    assert not config.trust_proxy and config.max_sessions == 3


def test_session_caps_below_one_mean_default() -> None:
    config = build_config(["-max-sessions", "0", "-max-sessions-per-ip=-4"], {})
    assert config.max_sessions == 1000 and config.max_sessions_per_ip == 10


def test_go_durations() -> None:
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("0") == 0
    for bad in ("", "5", "5x", "m", "1h 2m"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_tls_moves_the_default_port_but_not_an_explicit_one(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    flags = ["-tls-cert", str(cert), "-tls-key", str(key), "-base-url", "https://x.example"]
    assert build_config(flags, {}).addr == ":443"
    assert build_config([*flags, "-addr", ":8080"], {}).addr == ":8080"  # W-24 fixed
    assert build_config(flags, {"SP2P_ADDR": ":9000"}).addr == ":9000"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["-turn-servers", "turn:t:3478", "-turn-secret", "s", "-turn-username", "u"],
            {},
            "mutually exclusive",
        ),
        (["-acme", "-base-url", "https://x.example"], {}, "-acme needs -config-dir"),
        (["-acme", "-config-dir", "/tmp/x"], {}, "-acme needs -base-url"),
        (["-tls-cert", "/c"], {}, "must be given together"),
        (["-tls-cert", "/c", "-tls-key", "/k", "-acme", "-config-dir", "/d"], {}, "mutually exclusive"),
        (["-tls-cert", "/c", "-tls-key", "/k", "-base-url", "http://x"], {}, "must start with https://"),
        (
            ["-turn-servers", "turn:t:3478", "-turn-ttl", "0s", "-turn-secret", "s"],
            {},
            "-turn-ttl must be positive",
        ),
        (["-turn-servers", "stun:a,"], {}, "empty entry"),
        (["-turn-secret", "s"], {}, "no turn: URL"),
        (["-base-url", "https://x.example/$(reboot)"], {}, "unsafe characters"),
        (["-base-url", "ftp://x"], {}, "http(s)://host"),
        (["-addr", "nonsense"], {}, "invalid listen address"),
        ([], {"SP2P_MAX_SESSIONS": "lots"}, "SP2P_MAX_SESSIONS: invalid integer"),
        ([], {"SP2P_ACME": "maybe"}, "SP2P_ACME: invalid boolean"),
        (["-workers", "2"], {}, "-workers above 1 needs -redis"),
        (["-redis", "http://r:6379"], {}, "-redis must be a redis://, rediss:// or unix:// URL"),
        ([], {"SP2P_REDIS": "r:6379"}, "-redis must be a redis://"),
        (["-redis", "redis://r", "-redis-prefix", "a b"], {}, "-redis-prefix must be"),
        (["-redis", "redis://r", "-workers", "-1"], {}, "-workers must not be negative"),
    ],
)
def test_contradictions_are_config_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")
    ):
        build_config(argv, env)


def test_usage_errors() -> None:
    with pytest.raises(UsageError, match="not defined: -nope"):
        parse_args(["-nope"], {})
    with pytest.raises(UsageError, match="needs an argument"):
        parse_args(["-addr"], {})
    with pytest.raises(UsageError, match="invalid value for -trust-proxy"):
        parse_args(["-trust-proxy=yes"], {})
    with pytest.raises(HelpRequested):
        parse_args(["--help"], {})
    values, explicit = parse_args(["-acme", "--"], {})
    assert values == {"acme": True} and explicit == {"acme"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["version"], "unexpected argument 'version': did you mean -version?"),
        (["-acme", "help"], "unexpected argument 'help': did you mean -help?"),
        (["addr", ":9000"], "unexpected argument 'addr': did you mean -addr?"),
        (["-addr", ":9000", "extra"], "unexpected argument 'extra' (sp2p-server takes flags only)"),
        (["--", "-addr"], "unexpected argument '-addr': did you mean -addr?"),
    ],
)
def test_a_stray_word_is_refused_not_ignored(argv: list[str], message: str) -> None:
    """Go's flag package stops at a positional and ignores the rest; `sp2p-server version`
    would then start a server on every interface."""
    with pytest.raises(UsageError) as caught:
        parse_args(argv, {})
    assert str(caught.value) == message


def test_main_exit_codes_and_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-help"]) == 0
    assert "-turn-secret" in capsys.readouterr().out
    assert main(["-bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["version"]) == 2
    err = capsys.readouterr().err
    assert err == "sp2p-server: unexpected argument 'version': did you mean -version? (see -help)\n"
    assert main(["-acme"]) == 1
    err = capsys.readouterr().err
    assert err == "sp2p-server: -acme needs -config-dir (certificates are stored there)\n"


def test_unreadable_certificate_is_a_startup_error(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    proc = subprocess.run(
        [
            *server_command(),
            "-addr",
            "127.0.0.1:0",
            "-tls-cert",
            str(cert),
            "-tls-key",
            str(cert),
            "-base-url",
            "https://localhost",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("sp2p-server: cannot load the TLS certificate")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_busy_port_is_a_startup_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [*server_command(), "-addr", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=30,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_create_app_mapping_validation() -> None:
    with pytest.raises(ConfigError, match="unknown configuration key"):
        ServerConfig.from_mapping({"max_session": 3})
    with pytest.raises(ConfigError, match="expected an integer"):
        ServerConfig.from_mapping({"max_sessions": "3"})
    config = ServerConfig.from_mapping({"turn_servers": "stun:a, turn:b:3478", "turn_secret": "s"})
    assert config.stun_urls == ("stun:a",) and config.turn_urls == ("turn:b:3478",)


def test_workers_default_to_one_per_core_with_redis_and_one_without() -> None:
    import os

    assert build_config([], {}).effective_workers == 1
    shared = build_config([], {"SP2P_REDIS": "rediss://:pw@r.example:6380/2", "SP2P_REDIS_PREFIX": "prod"})
    assert shared.effective_workers == (os.cpu_count() or 1)
    assert (shared.redis_url, shared.redis_prefix) == ("rediss://:pw@r.example:6380/2", "prod")
    assert build_config(["-redis", "unix:///run/redis.sock", "-workers", "3"], {}).effective_workers == 3


def test_redis_passwords_never_reach_messages() -> None:
    from server.redis_store import redact_url

    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://user:s3cret@h/1") == "rediss://user:***@h/1"
    assert redact_url("unix:///run/redis.sock") == "unix:///run/redis.sock"
    result = subprocess.run(
        [*server_command(), "-addr", "127.0.0.1:0", "-redis", "redis://:s3cret@127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 1
    assert "s3cret" not in result.stderr and ":***@127.0.0.1:1" in result.stderr

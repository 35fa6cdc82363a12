"""Server configuration: one frozen dataclass, validated in one place.

`ServerConfig.from_mapping()` is what both `create_app(config)` and the command line use;
it raises `ConfigError` with a one-line, human-readable message for anything invalid or
contradictory (the CLI prints it and exits 1, never a traceback).

Durations are seconds (floats). Defaults mirror the original server (server-web.md §2.9)
where it had them, and pick conservative values for the limits it lacked (§7 W-8).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

#: where `/dl/<asset>` redirects when no -dl-dir is set
DEFAULT_DL_URL = "https://github.com/zyno-io/sp2p/releases/latest/download"
DEFAULT_ACME_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"

#: characters that must never reach the bootstrap shell scripts (upstream's list plus blanks)
UNSAFE_URL_CHARS = frozenset("\"'`$\\!;|&(){}<> \t\r\n")


class ConfigError(ValueError):
    """Invalid or contradictory configuration; the message is one line for the user."""


#: ServerConfig fields that must be above zero (counts, limits, periods)
_POSITIVE = (
    "max_sessions", "max_sessions_per_ip", "max_conns_per_ip", "msg_burst", "max_candidates",
    "max_file_info", "turn_max_per_peer", "session_idle", "session_max_age", "hello_timeout",
    "reaper_interval", "ping_interval", "write_timeout", "msg_rate", "stats_interval",
    "cert_check_interval", "acme_check_interval",
)
#: fields where 0 is allowed (unlimited, the default, no delay)
_NON_NEGATIVE = ("max_conns", "rate_limit", "miss_limit", "turn_per_ip_hour", "workers", "turn_delay")


@dataclass(frozen=True)
class ServerConfig:
    # --- identity -------------------------------------------------------------------
    #: public origin (scheme://host[:port][/prefix]); None: derived from each request's Host
    base_url: str | None = None
    trust_proxy: bool = False
    # --- TURN -----------------------------------------------------------------------
    turn_servers: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl: float = 300.0
    turn_username: str = ""
    turn_password: str = ""
    #: credentials go out no earlier than this after the receiver joined (anti-scraping)
    turn_delay: float = 5.0
    #: relay-retry requests answered per peer and session (the same credentials each time)
    turn_max_per_peer: int = 3
    #: credential issues per client IP per hour (0 = unlimited)
    turn_per_ip_hour: int = 60
    # --- capacity -------------------------------------------------------------------
    max_sessions: int = 1000
    max_sessions_per_ip: int = 10
    #: concurrent WebSockets, all IPs (0 = 2 * max_sessions + 100)
    max_conns: int = 0
    max_conns_per_ip: int = 64
    #: WebSocket upgrades per IP per minute (0 = unlimited)
    rate_limit: int = 30
    #: failed joins and file-info misses per IP per minute before back-off (0 = unlimited)
    miss_limit: int = 30
    #: messages per second per connection (token bucket), and its burst
    msg_rate: float = 50.0
    msg_burst: int = 200
    #: ICE candidates relayed per peer and session
    max_candidates: int = 200
    #: largest stored file-info blob (characters of base64)
    max_file_info: int = 8192
    # --- timers ---------------------------------------------------------------------
    session_idle: float = 300.0
    session_max_age: float = 3600.0
    hello_timeout: float = 10.0
    reaper_interval: float = 30.0
    ping_interval: float = 30.0
    write_timeout: float = 5.0
    # --- files ----------------------------------------------------------------------
    config_dir: Path | None = None
    dl_dir: Path | None = None
    dl_url: str = DEFAULT_DL_URL
    static_dir: Path | None = None
    bootstrap_dir: Path | None = None
    # --- TLS (the CLI uses these; the app only needs `tls` for headers) --------------
    tls_cert: Path | None = None
    tls_key: Path | None = None
    acme: bool = False
    acme_email: str = ""
    acme_directory: str = DEFAULT_ACME_DIRECTORY
    acme_http_addr: str = ":80"
    acme_ca_file: Path | None = None
    acme_renew_before: float = 30 * 86400.0
    acme_check_interval: float = 12 * 3600.0
    cert_check_interval: float = 30.0
    # --- shared state (several workers or nodes) -----------------------------------
    #: redis://, rediss:// or unix:// URL; "" = sessions in this process's memory
    redis_url: str = ""
    #: key and channel prefix, so deployments can share one Redis
    redis_prefix: str = "sp2p"
    # --- process (CLI only) ---------------------------------------------------------
    addr: str = ":8080"
    #: gunicorn worker processes; 0 = one per core with Redis, 1 without
    workers: int = 0
    #: move a receiver's connection to its sender's worker on this host (server.handoff)
    handoff: bool = True
    stats_interval: float = 5.0
    server_version: str = field(default="")

    # ------------------------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.acme or self.tls_cert is not None

    @property
    def effective_max_conns(self) -> int:
        return self.max_conns if self.max_conns > 0 else 2 * self.max_sessions + 100

    @property
    def effective_workers(self) -> int:
        if self.workers > 0:
            return self.workers
        return (os.cpu_count() or 1) if self.redis_url else 1

    @property
    def stun_urls(self) -> tuple[str, ...]:
        return tuple(u for u in self.turn_servers if not _is_turn_url(u))

    @property
    def turn_urls(self) -> tuple[str, ...]:
        return tuple(u for u in self.turn_servers if _is_turn_url(u))

    @functools.cached_property
    def turn_available(self) -> bool:  # (cached: asked for every relayed message)
        return bool(self.turn_urls)

    @property
    def acme_host(self) -> str:
        return urlsplit(self.base_url or "").hostname or ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None) -> ServerConfig:
        """Build and validate. Keys are field names; unknown keys are an error."""
        values = dict(values or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown configuration key: {unknown[0]}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            kwargs[name] = _coerce(name, value, names[name].default)
        config = cls(**kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        if self.turn_secret and (self.turn_username or self.turn_password):
            raise ConfigError("-turn-secret and -turn-username/-turn-password are mutually exclusive")
        if (self.turn_secret or self.turn_username or self.turn_password) and not self.turn_urls:
            raise ConfigError("TURN credentials are set but -turn-servers has no turn: URL")
        if self.turn_ttl <= 0:
            raise ConfigError("-turn-ttl must be positive")
        for url in self.turn_servers:
            if not url:
                raise ConfigError("-turn-servers contains an empty entry")
            if not re.fullmatch(r"(stuns?|turns?):[^\s,]+", url):
                raise ConfigError(f"-turn-servers: not a stun:/turn: URL: {url!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("-tls-cert and -tls-key must be given together")
        if self.acme and self.tls_cert is not None:
            raise ConfigError("-acme and -tls-cert/-tls-key are mutually exclusive")
        if self.base_url is not None:  # first: the ACME checks read its host
            check_base_url(self.base_url, tls=self.tls)
        if self.acme and self.config_dir is None:
            raise ConfigError("-acme needs -config-dir (certificates are stored there)")
        if self.acme and not self.acme_host:
            raise ConfigError("-acme needs -base-url with a host name (https://host)")
        if self.acme:
            self._check_acme()
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f"-{name.replace('_', '-')} must be positive")
        redis = _split(self.redis_url, "-redis")
        if self.redis_url and redis.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("-redis must be a redis://, rediss:// or unix:// URL")
        redis_path = redis.path
        if not self.redis_url.startswith("unix:") and not re.fullmatch(r"/?\d*", redis_path):
            # redis-py would quietly take database 0 for /abc
            raise ConfigError("-redis: the path must be a database number (redis://host:port/0)")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.redis_prefix):
            raise ConfigError("-redis-prefix must be 1-64 letters, digits or _.:-")
        if self.workers > 1 and not self.redis_url:
            raise ConfigError("-workers above 1 needs -redis (without it sessions live in one process)")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigError(f"-{name.replace('_', '-')} must not be negative")
        if self.dl_dir is not None and not self.dl_dir.is_dir():
            raise ConfigError(f"-dl-dir is not a directory: {self.dl_dir}")
        if self.static_dir is not None and not self.static_dir.is_dir():
            raise ConfigError(f"-static-dir is not a directory: {self.static_dir}")
        if self.config_dir is not None and self.config_dir.exists() and not self.config_dir.is_dir():
            raise ConfigError(f"-config-dir is not a directory: {self.config_dir}")
        if not self.dl_url.startswith(("https://", "http://")):
            raise ConfigError("-dl-url must be an http(s) URL")
        parse_addr(self.addr)
        if self.acme:
            parse_addr(self.acme_http_addr, flag="-acme-http-addr")


    def _check_acme(self) -> None:
        """What would otherwise surface as 'could not obtain a certificate' from deep in requests."""
        if not self.acme_directory.startswith(("https://", "http://")):
            raise ConfigError(f"-acme-directory must be an http(s) URL: {self.acme_directory!r}")
        if self.acme_ca_file is not None and not self.acme_ca_file.is_file():
            raise ConfigError(f"-acme-ca-file is not a file: {self.acme_ca_file}")
        if self.acme_email and not re.fullmatch(r"[^@\s]+@[^@\s]+", self.acme_email):
            raise ConfigError(f"-acme-email is not an e-mail address: {self.acme_email!r}")


def _is_turn_url(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


_PATH_FIELDS = {
    "config_dir",
    "dl_dir",
    "static_dir",
    "bootstrap_dir",
    "tls_cert",
    "tls_key",
    "acme_ca_file",
}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Accept natural Python values (and strings for paths/lists) for a field."""
    if name in _PATH_FIELDS:
        return None if value in (None, "") else Path(value)
    if name == "base_url":
        return None if value in (None, "") else str(value)
    if name == "turn_servers":
        if isinstance(value, str):
            # a trailing comma gives an empty entry, which validate() rejects (W-24)
            return tuple(p.strip() for p in value.split(",")) if value.strip() else ()
        return tuple(str(v) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number of seconds")
        return float(value)
    if isinstance(default, str):
        return str(value)
    return value


def _split(url: str, flag: str) -> SplitResult:
    """`urlsplit`, whose ValueError (an unclosed ``[``) is a ConfigError naming `flag`. The
    URL is not shown: a Redis URL may hold a password."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{flag} is not a valid URL ({exc})") from None


def check_base_url(url: str, *, tls: bool) -> None:
    """A base URL must be http(s)://host[:port][/path] without shell-unsafe characters."""
    bad = sorted(set(url) & UNSAFE_URL_CHARS)
    if bad:
        raise ConfigError(f"-base-url contains unsafe characters: {''.join(bad)!r}")
    parts = _split(url, "-base-url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"-base-url must be http(s)://host[:port]: {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"-base-url must not have credentials, a query or a fragment: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"-base-url has an invalid port: {url!r}") from exc
    if tls and parts.scheme != "https":
        raise ConfigError("-base-url must start with https:// when TLS or ACME is on")


def parse_addr(addr: str, *, flag: str = "-addr") -> tuple[str, int]:
    """Go-style listen address `host:port`, `:port` or `[v6]:port` -> (host, port); errors
    name `flag`, the setting it came from."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):(\d{1,5})", addr)
    if not match or int(match.group(2)) > 65535:
        raise ConfigError(f"{flag}: invalid listen address {addr!r} (want host:port or :port)")
    host = match.group(1).strip("[]")
    if host and not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ConfigError(f"{flag}: invalid listen address {addr!r}") from exc
    return host, int(match.group(2))

"""Command-line flags of sp2p-server, parsed the way Go's `flag` package does.

`-flag` and `--flag` are the same; values are `-flag value` or `-flag=value`; a boolean is
given bare (`-acme`) or as `-acme=false`; parsing stops at `--` or the first non-flag
argument (positional arguments are ignored, as in the original). Every flag also has an
environment variable `SP2P_<NAME>` that supplies its default when it is non-empty; an
explicit flag wins. Unlike the original, environment values are parsed strictly
(`SP2P_TRUST_PROXY=false` means false, an invalid integer is an error, not ignored).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from server.config import ConfigError

Kind = Literal["str", "bool", "int", "float", "duration", "path", "list"]


class UsageError(ConfigError):
    """Bad command line (exit 2)."""


class HelpRequested(Exception):
    """-h / -help: print usage and exit 0."""


class VersionRequested(Exception):
    """-version: print the version and exit 0."""


@dataclass(frozen=True)
class Flag:
    name: str
    kind: Kind
    help: str
    config_field: str = ""

    @property
    def field(self) -> str:
        """The ServerConfig field the flag sets."""
        return self.config_field or self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return "SP2P_" + self.name.upper().replace("-", "_")


#: One row per flag (a table: its rows look alike by design). The ServerConfig field is the
#: name with `_` for `-` unless `config_field` says otherwise.
FLAGS: tuple[Flag, ...] = (
    Flag("addr", "str", "listen address host:port (default :8080, :443 with TLS)"),
    Flag("base-url", "str",
         "public URL, e.g. https://sp2p.example.org (default: taken from each request's Host header)"),
    Flag("trust-proxy", "bool",
         "take the client IP from X-Forwarded-For (right-most entry); only behind a reverse proxy"),
    Flag("tls-cert", "path", "TLS certificate chain file (PEM); reloaded on change"),
    Flag("tls-key", "path", "TLS private key file (PEM)"),
    Flag("acme", "bool", "obtain and renew a certificate with ACME (HTTP-01)"),
    Flag("acme-email", "str", "contact e-mail for the ACME account"),
    Flag("acme-directory", "str", "ACME directory URL (default Let's Encrypt)"),
    Flag("acme-http-addr", "str", "HTTP-01 challenge listener (default :80)"),
    Flag("acme-ca-file", "path", "CA bundle to verify the ACME server with"),
    Flag("acme-renew-before", "duration", "renew this long before expiry (default 720h)"),
    Flag("acme-check-interval", "duration", "how often to check for renewal (default 12h)"),
    Flag("config-dir", "path",
         "state directory: stats.json and acme/ (default: none, state stays in memory)"),
    Flag("turn-servers", "list", "comma-separated stun:/turn:/turns: URLs"),
    Flag("turn-secret", "str", "coturn static-auth-secret (REST credentials)"),
    Flag("turn-ttl", "duration", "lifetime of REST credentials (default 5m)"),
    Flag("turn-username", "str", "static TURN username"),
    Flag("turn-password", "str", "static TURN password"),
    Flag("turn-delay", "duration", "minimum time after join before TURN credentials are sent (default 5s)"),
    Flag("turn-max-per-peer", "int", "relay-retry answers per peer and session (default 3)"),
    Flag("turn-per-ip-hour", "int", "TURN credential issues per IP per hour, 0 = unlimited (default 60)"),
    Flag("max-sessions", "int", "maximum sessions (default 1000); 0 or less means the default"),
    Flag("max-sessions-per-ip", "int",
         "maximum sessions per sender IP (default 10); 0 or less means the default"),
    Flag("max-conns", "int", "maximum WebSockets; 0, the default, means 2*max-sessions+100"),
    Flag("max-conns-per-ip", "int", "maximum WebSockets per IP (default 64)"),
    Flag("rate-limit", "int", "WebSocket connections per IP per minute, 0 = unlimited (default 30)"),
    Flag("miss-limit", "int",
         "failed joins and file-info misses per IP per minute, 0 = unlimited (default 30)"),
    Flag("msg-rate", "float", "messages per second per connection (default 50)"),
    Flag("msg-burst", "int", "message burst per connection (default 200)"),
    Flag("max-candidates", "int", "ICE candidates relayed per peer (default 200)"),
    Flag("max-file-info", "int", "largest file-info blob in bytes (default 8192)"),
    Flag("session-idle", "duration",
         "expire a session after this long without any traffic, pings included (default 5m)"),
    Flag("session-max-age", "duration", "maximum session age (default 1h)"),
    Flag("hello-timeout", "duration", "deadline for the first message (default 10s)"),
    Flag("reaper-interval", "duration", "expiry check period (default 30s)"),
    Flag("ping-interval", "duration",
         "WebSocket ping period; a missed pong closes the connection (default 30s)"),
    Flag("write-timeout", "duration", "per-message send timeout (default 5s)"),
    Flag("dl-dir", "path",
         "serve /dl/ from this directory instead of redirecting: sp2p-<os>-<arch> binaries and their "
         "sp2p-<os>-<arch>.sha256 files (sha256sum format), as the bootstrap scripts fetch them"),
    Flag("dl-url", "str", "where /dl/<file> redirects without -dl-dir"),
    Flag("static-dir", "path", "web UI directory (default: the installed one)"),
    Flag("redis", "str",
         "share sessions through Redis (redis://[:password@]host:port/db, rediss://, unix:///path);"
         " needed for -workers above 1 and for several nodes behind a load balancer",
         config_field="redis_url"),
    Flag("redis-prefix", "str", "prefix of every Redis key and channel (default sp2p)"),
    Flag("workers", "int",
         "worker processes (default: one per core with -redis, else 1; 0 means the default)"),
    Flag("handoff", "bool",
         "with -redis: move a receiver's connection to the worker holding its sender when that is on"
         " this host (default true; -handoff=false keeps every connection where it landed)"),
    Flag("stats-interval", "duration", "stats.json write period (default 5s)"),
    Flag("cert-check-interval", "duration", "certificate file change check period (default 30s)"),
)

_BY_NAME = {f.name: f for f in FLAGS}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds ("300ms", "1h30m", "0")."""
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r} (examples: 30s, 5m, 1h30m)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def _convert(flag: Flag, text: str) -> Any:
    if flag.kind == "bool":
        return parse_bool(text)
    if flag.kind == "int":
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise ValueError(f"invalid integer {text!r}")
        return int(text)
    if flag.kind == "float":
        return float(text)
    if flag.kind == "duration":
        return parse_duration(text)
    return text  # str, path and list are converted by ServerConfig


def parse_args(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[dict[str, Any], set[str]]:
    """Return (config values, names of flags set explicitly on the command line).

    Raises UsageError for a bad command line, ConfigError for a bad environment value and
    HelpRequested for -h/-help.
    """
    values: dict[str, Any] = {}
    for flag in FLAGS:
        raw = environ.get(flag.env, "")
        if raw != "":
            try:
                values[flag.field] = _convert(flag, raw)
            except ValueError as exc:
                raise ConfigError(f"{flag.env}: {exc}") from None
    explicit: set[str] = set()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.lstrip("-").partition("=")
        if arg.startswith("---") or not name:
            raise UsageError(f"bad flag syntax: {arg}")
        if name in ("h", "help"):
            raise HelpRequested
        if name == "version":
            raise VersionRequested
        spec = _BY_NAME.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if eq:
            text = inline
        elif spec.kind == "bool":
            text = "true"
        else:
            if i + 1 >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            i += 1
            text = args[i]
        try:
            values[spec.field] = _convert(spec, text)
        except ValueError as exc:
            raise UsageError(f"invalid value for -{name}: {exc}") from None
        explicit.add(spec.name)
        i += 1
    rest = args[i + 1 :] if i < len(args) and args[i] == "--" else args[i:]
    if rest:
        raise UsageError(_unexpected(rest[0]))
    return values, explicit


def _unexpected(word: str) -> str:
    """The server takes flags only. Go's flag package would stop at `word` and ignore it and
    everything after; here `sp2p-server version` would then start a server on every
    interface, so a stray word is refused, with the flag meant when it names one."""
    name = word.lstrip("-")
    meant = "-version" if name == "version" else "-help" if name in ("h", "help") else None
    if meant is None and name in _BY_NAME:
        meant = f"-{name}"
    hint = f": did you mean {meant}?" if meant else " (sp2p-server takes flags only)"
    return f"unexpected argument {word!r}{hint}"


def usage() -> str:
    lines = ["usage: sp2p-server [flags]", ""]
    for flag in FLAGS:
        arg = (
            ""
            if flag.kind == "bool"
            else " " + {"duration": "duration", "int": "n", "float": "n"}.get(flag.kind, "string")
        )
        lines.append(f"  -{flag.name}{arg}")
        lines.append(f"        {flag.help}  [${flag.env}]")
    lines.append("  -version")
    lines.append("        print the version and exit")
    return "\n".join(lines) + "\n"

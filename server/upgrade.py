"""The WebSocket opening handshake of `/ws`, decided without Flask.

`UpgradeRequest` is what the checks need from an HTTP request (built from a WSGI environ);
`decide()` applies them in upstream's order (rate limit 429, not an upgrade 426, foreign
Origin 403, malformed handshake 400) and returns either the refusal or the bytes of the
101 response to write on the raw socket. permessage-deflate is never negotiated (S4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.config import ServerConfig
from server.headers import origin_problem, security_headers
from server.ratelimit import client_ip

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    method: str
    #: header name (lower case) -> value
    headers: Mapping[str, str]
    ip: str
    scheme: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], *, trust_proxy: bool) -> UpgradeRequest:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        return cls(
            method=str(environ.get("REQUEST_METHOD", "")),
            headers=headers,
            ip=client_ip(environ, trust_proxy=trust_proxy),
            scheme=str(environ.get("wsgi.url_scheme", "http")),
        )


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str
    body: str


@dataclass(frozen=True, slots=True)
class Accepted:
    response: bytes


_REASONS = {400: "Bad Request", 403: "Forbidden", 426: "Upgrade Required", 429: "Too Many Requests"}


def decide(
    config: ServerConfig, request: UpgradeRequest, rate_ok: Callable[[str], bool]
) -> Refused | Accepted:
    """Refuse, or accept with the 101 response. `rate_ok(ip)` counts this attempt."""
    headers = request.headers
    if not rate_ok(request.ip):
        return Refused(429, _REASONS[429], "rate limit exceeded")
    if headers.get("upgrade", "").lower() != "websocket":
        return Refused(426, _REASONS[426], "websocket upgrade required")
    problem = origin_problem(config, headers)
    if problem is not None:
        return Refused(403, _REASONS[403], problem)
    key = headers.get("sec-websocket-key", "")
    if (
        request.method != "GET"
        or "upgrade" not in headers.get("connection", "").lower()
        or headers.get("sec-websocket-version", "") != "13"
        or not _valid_key(key)
    ):
        return Refused(400, _REASONS[400], "bad websocket handshake")
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()  # noqa: S324 - RFC 6455
    return Accepted(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def refusal_response(
    config: ServerConfig, request: UpgradeRequest, refused: Refused
) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) for a WSGI start_response: plain text, our headers."""
    body = (refused.body + "\n").encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *security_headers(config, request.headers.get("host", "")),
    ]
    if refused.status == 426:
        headers.append(("Sec-WebSocket-Version", "13"))
    return f"{refused.status} {refused.reason}", headers, body


#: the longest request head the raw path reads (gunicorn's own limits are larger; a
#: browser's upgrade request is well under 2 KiB)
MAX_HEAD = 8192
_WS_TARGET = (b"GET /ws ", b"GET /ws?")


def peek_ws_head(sock: socket.socket, timeout: float) -> bytes | None:
    """The request head if this connection's request is `GET /ws`, else None, with nothing
    consumed either way (MSG_PEEK): anything else goes to the HTTP server untouched."""
    deadline = time.monotonic() + timeout
    seen = b""
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            seen = sock.recv(MAX_HEAD, socket.MSG_PEEK)
        except (OSError, ValueError):
            return None
        if not seen or seen[:7] != b"GET /ws"[: len(seen)]:
            return None
        if len(seen) >= 8 and not seen.startswith(_WS_TARGET):
            return None
        end = seen.find(b"\r\n\r\n")
        if end >= 0:
            return seen[: end + 4]
        if len(seen) >= MAX_HEAD or time.monotonic() >= deadline:
            return None
        time.sleep(0.01)  # the rest of the head is on its way; a peek does not wait for more


def request_from_head(head: bytes, peer: Any, *, trust_proxy: bool) -> UpgradeRequest | None:
    """The UpgradeRequest of a raw request head (None: not a well-formed HTTP/1.x head, left
    to the HTTP server). Header names are lower-cased and repeated lines joined with commas,
    as a WSGI server and from_environ() would; read straight from the head, with no environ
    in between (that round trip was ~3 % of the worker per connection)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        key = name.lower().replace("_", "-")
        value = value.strip()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    remote = str(peer[0]) if isinstance(peer, tuple) else ""
    # the one rule for the client IP reads WSGI keys: give it the two it reads
    forwarded = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": headers.get("x-forwarded-for", "")}
    return UpgradeRequest(
        method=parts[0],
        headers=headers,
        ip=client_ip(forwarded, trust_proxy=trust_proxy),
        scheme="http",
    )

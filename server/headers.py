"""Security headers on every response, and the WebSocket Origin check.

CSP (team contract): `default-src 'self'; script-src 'self'; style-src 'self'; img-src
'self' data: blob:; connect-src 'self' ws(s)://<own host>; worker-src 'self'; object-src
'none'; base-uri 'none'; frame-ancestors 'none'`. connect-src names exactly our own host
(upstream allowed any `ws:`/`wss:`, W-10); both schemes unless we terminate TLS ourselves,
because behind a TLS proxy the request looks like plain HTTP while the page is https.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from flask import Request, Response

from server.bootstrap import safe_host
from server.config import ServerConfig

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def own_host(config: ServerConfig, host: str) -> str | None:
    """Our host as pages must name it: the base URL's, else the request's Host if safe."""
    if config.base_url:
        return urlsplit(config.base_url).netloc.lower()
    return host.lower() if safe_host(host) else None


def base_url(config: ServerConfig, *, host: str, scheme: str, forwarded_proto: str) -> str | None:
    """The configured base URL, else one derived from a request's Host, scheme and (with
    -trust-proxy) X-Forwarded-Proto; None if the Host header is unsafe to echo."""
    if config.base_url:
        return config.base_url.rstrip("/")
    if not safe_host(host):
        return None
    scheme = "https" if scheme == "https" or config.tls else "http"
    if config.trust_proxy:
        proto = forwarded_proto.rsplit(",", 1)[-1].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
    return f"{scheme}://{host}"


def content_security_policy(config: ServerConfig, request_host: str) -> str:
    host = own_host(config, request_host)
    if host is None:
        connect = "connect-src 'self'"
    elif config.tls:
        connect = f"connect-src 'self' wss://{host}"
    else:
        connect = f"connect-src 'self' ws://{host} wss://{host}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"{connect}; worker-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def security_headers(config: ServerConfig, request_host: str) -> list[tuple[str, str]]:
    """The headers every response carries (`request_host`: the request's Host header)."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", content_security_policy(config, request_host)),
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
    ]
    if config.tls:
        headers.append(("Strict-Transport-Security", "max-age=31536000"))
    return headers


def add_security_headers(config: ServerConfig, request: Request, response: Response) -> None:
    for name, value in security_headers(config, request.headers.get("Host", "")):
        response.headers.setdefault(name, value)


def origin_problem(config: ServerConfig, headers: Mapping[str, str]) -> str | None:
    """None if the WebSocket may be opened; else the 403 reason (upstream's wording).

    No Origin (CLI clients) is fine. A browser Origin must name this very host (the Host
    header) or the configured base URL's host; never a wildcard (S10). `Origin: null`
    and look-alike hosts fail. `headers` are keyed by lower-case name.
    """
    origin = headers.get("origin")
    if origin is None:
        return None
    origin_host = urlsplit(origin).netloc.lower() if "://" in origin else ""
    host = headers.get("host", "").lower()
    allowed = {host} if host else set()
    if config.base_url:
        allowed.add(urlsplit(config.base_url).netloc.lower())
    if origin_host and origin_host in allowed:
        return None
    shown = (origin_host or origin)[:100]
    return f'request Origin "{shown}" is not authorized for Host "{host[:100]}"'

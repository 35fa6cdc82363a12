"""Security headers on every response, and the WebSocket Origin check.

CSP (team contract): `default-src 'self'; script-src 'self'; style-src 'self'; img-src
'self' data: blob:; connect-src 'self' ws(s)://<own host>; worker-src 'self'; object-src
'none'; base-uri 'none'; frame-ancestors 'none'`. connect-src names exactly our own host
(upstream allowed any `ws:`/`wss:`, W-10); both schemes unless we terminate TLS ourselves,
because behind a TLS proxy the request looks like plain HTTP while the page is https.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Request, Response

from server.bootstrap import safe_host
from server.config import ServerConfig

PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def own_host(config: ServerConfig, request: Request) -> str | None:
    if config.base_url:
        return urlsplit(config.base_url).netloc.lower()
    host = request.headers.get("Host", "")
    return host.lower() if safe_host(host) else None


def content_security_policy(config: ServerConfig, request: Request) -> str:
    host = own_host(config, request)
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


def add_security_headers(config: ServerConfig, request: Request, response: Response) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", content_security_policy(config, request))
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if config.tls:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def origin_problem(config: ServerConfig, request: Request) -> str | None:
    """None if the WebSocket may be opened; else the 403 reason (upstream's wording).

    No Origin (CLI clients) is fine. A browser Origin must name this very host (the Host
    header) or the configured base URL's host; never a wildcard (S10). `Origin: null`
    and look-alike hosts fail.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    origin_host = urlsplit(origin).netloc.lower() if "://" in origin else ""
    host = request.headers.get("Host", "").lower()
    allowed = {host} if host else set()
    if config.base_url:
        allowed.add(urlsplit(config.base_url).netloc.lower())
    if origin_host and origin_host in allowed:
        return None
    shown = (origin_host or origin)[:100]
    return f'request Origin "{shown}" is not authorized for Host "{host[:100]}"'

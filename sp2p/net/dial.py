"""Open a TCP (or TLS) connection to a server by URL parts, paying only for what the URL needs.

The signaling WebSocket (sp2p.net.wsclient) and the preview request (sp2p.net.preview) both
connect here, so a ws:// or http:// server never loads ssl, and an ASCII host name never loads
the idna codec. Whether an http(s)_proxy variable would route a host is decided here too: the
callers then hand that URL to a library that speaks proxies.
"""

from __future__ import annotations

import os
import socket


def proxied(secure: bool, host: str) -> bool:
    """Would an http(s)_proxy environment variable route this host (as websocket-client and
    urllib read them)?"""
    key = "https_proxy" if secure else "http_proxy"
    if not (os.environ.get(key) or os.environ.get(key.upper())):
        return False
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    skip = {h.strip() for h in no_proxy.split(",") if h.strip()} | {"localhost", "127.0.0.1"}
    return "*" not in skip and host not in skip


def host_header(host: str, port: int | None) -> str:
    """The Host header's value: an IPv6 literal in brackets, the port only when the URL had one."""
    netloc = f"[{host}]" if ":" in host else host
    return netloc if port is None else f"{netloc}:{port}"


def connect(host: str, port: int, *, secure: bool, timeout: float) -> socket.socket:
    """A connected socket with TCP_NODELAY, wrapped in TLS (verified against `host`) if `secure`."""
    # an ASCII name as bytes: getaddrinfo() would load the idna codec (and stringprep) for a str
    # (it hands the name to getaddrinfo, which takes bytes; typeshed says str only)
    name = host.encode() if host.isascii() else host
    sock = socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _tls(sock, host) if secure else sock
    except BaseException:
        sock.close()
        raise


def _tls(sock: socket.socket, host: str) -> socket.socket:
    import ssl  # only wss:// and https:// pay for it

    context = ssl.create_default_context()
    bundle = os.environ.get("WEBSOCKET_CLIENT_CA_BUNDLE")  # honoured as websocket-client did
    if bundle and os.path.isfile(bundle):
        context.load_verify_locations(cafile=bundle)
    elif bundle and os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    return context.wrap_socket(sock, server_hostname=host)

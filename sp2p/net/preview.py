"""Fetch the sender's encrypted file-info blob over HTTP(S) (`GET /api/file-info/<id>`).

Best-effort: any failure is "no preview", never an error; the caller says so and asks anyway.

One HTTP/1.0 GET on a socket from sp2p.net.dial rather than urllib: urllib.request loads ssl,
hashlib, tempfile (shutil, random, bz2, lzma) and more, and the receiver's short-code check
(sp2p.flow.code_check) runs this on the start-up path of 1 code in 8 (issue 12). HTTP/1.0 keeps
the answer unchunked and ends it at the close. A proxied URL still goes through urllib.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import time
from urllib.parse import quote, urlsplit

from sp2p.log import get_logger
from sp2p.net import dial, http_head
from sp2p.proto.fileinfo import MAX_FILE_INFO_BLOB

log = get_logger(__name__)

PREVIEW_TIMEOUT = 5.0
#: the JSON envelope around a base64 blob of at most MAX_FILE_INFO_BLOB bytes
_MAX_BODY = MAX_FILE_INFO_BLOB * 2
#: status line and headers of the answer (a few hundred bytes from our server and Go's)
_MAX_HEAD = 16384


def fetch_file_info(base_url: str, session_id: str, *, timeout: float = PREVIEW_TIMEOUT) -> bytes | None:
    """The raw blob, or None when the server has none (404), is unreachable or answers junk."""
    url = f"{base_url.rstrip('/')}/api/file-info/{quote(session_id, safe='')}"
    try:
        body = _get(url, timeout)
    except (OSError, ValueError) as exc:
        log.debug("no preview from %s: %s", url, exc)
        return None
    if body is None or len(body) > _MAX_BODY:
        return None
    try:
        data = json.loads(body)
        blob = base64.b64decode(data["data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return blob


def _get(url: str, timeout: float) -> bytes | None:
    """The body of a 200 answer (cut at one byte past _MAX_BODY), else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    secure = parts.scheme == "https"
    if dial.proxied(secure, parts.hostname):
        return _get_proxied(url, timeout)
    deadline = time.monotonic() + timeout
    with dial.connect(parts.hostname, parts.port or (443 if secure else 80), secure=secure,
                      timeout=timeout) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.0\r\nHost: {dial.host_header(parts.hostname, parts.port)}\r\n"
                     "Accept: application/json\r\nConnection: close\r\n\r\n".encode())
        body = bytearray()  # the head first, then what follows it
        head = http_head.read_head(body, lambda: _recv(sock, deadline), _MAX_HEAD)
        if head.status != 200:
            return None
        while len(body) <= _MAX_BODY and (chunk := _recv(sock, deadline)):
            body += chunk
    return bytes(body[: _MAX_BODY + 1])


def _recv(sock: socket.socket, deadline: float) -> bytes:
    """The next bytes (b"" at the close), within the deadline (else TimeoutError)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the server took too long")
    sock.settimeout(left)
    return sock.recv(65536)


def _get_proxied(url: str, timeout: float) -> bytes | None:
    """urllib speaks proxies; a proxied preview pays for its imports."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked by the caller
            return bytes(resp.read(_MAX_BODY + 1))
    except urllib.error.URLError as exc:  # HTTPError (a 404 included) is one
        log.debug("no preview through the proxy: %s", exc)
        return None

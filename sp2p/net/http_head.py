"""Read an HTTP/1.x answer's status line and headers off a socket: one home for the signaling
WebSocket's upgrade (sp2p.net.wsclient) and the preview GET (sp2p.net.preview).

Only what those two need: the status code and the header fields (names lower-cased, the last
of a repeated name wins). No http.client: it loads email.parser and more on the start-up path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

#: the blank line that ends the head
_END = b"\r\n\r\n"


class HeadError(ValueError):
    """The answer is not an HTTP head: no status line, too long, or the connection ended first."""


class Head(NamedTuple):
    status: int
    #: header names lower-cased, values stripped
    headers: dict[str, str]


def parse_head(raw: bytes) -> Head:
    """The status line and header lines (`raw` without the blank line that ends them)."""
    lines = raw.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    code = status[1] if len(status) > 1 else ""
    if not status[0].startswith("HTTP/") or not (code.isascii() and code.isdigit()):
        raise HeadError("not an HTTP answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(int(code), headers)


def read_head(buf: bytearray, fill: Callable[[], bytes], limit: int) -> Head:
    """Take the head off the front of `buf`, calling `fill()` for more bytes (b"" at the end of
    the connection) until the blank line came; what follows it (the body, or the first
    WebSocket frames) stays in `buf`. A head past `limit` bytes is a HeadError."""
    searched = 0
    while (end := buf.find(_END, searched)) < 0:
        if len(buf) > limit:
            raise HeadError("oversized HTTP head")
        searched = max(0, len(buf) - len(_END) + 1)  # the blank line may straddle two reads
        chunk = fill()
        if not chunk:
            raise HeadError("the connection ended before the HTTP head did")
        buf += chunk
    if end > limit:
        raise HeadError("oversized HTTP head")
    head = parse_head(bytes(buf[:end]))
    del buf[: end + len(_END)]
    return head

"""What two workers say on the handoff socket (server.handoff), sans-IO.

The worker giving a connection away sends one OFFER: a 4-byte length, then a JSON body
(the client's IP, the base URL its handshake asked for, and its reader's state), with the
connection's descriptor attached (SCM_RIGHTS) to the first byte. The taker answers one
byte, TAKEN or DECLINED; after TAKEN the giver sends COMMIT and forgets the connection, or
hangs up without it and serves the connection itself. Only a COMMIT makes the taker serve:
whoever has not decided by then can still back out, and exactly one of them ends up with it.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass

from server.connection import ReaderState

TAKEN = b"Y"
DECLINED = b"N"
COMMIT = b"G"

#: an offer's body at most (a read's messages and a frame begun: well under this)
MAX_OFFER = 1 << 20
LENGTH = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Offer:
    ip: str
    base_url: str | None
    reader: ReaderState


def encode(offer: Offer) -> bytes:
    """The offer as sent (length prefix included). Raises ValueError past MAX_OFFER."""
    reader = offer.reader
    body = json.dumps(
        {
            "ip": offer.ip,
            "url": offer.base_url,
            "inbox": list(reader.inbox),
            "buf": base64.b64encode(reader.leftover).decode("ascii"),
            "ping": reader.next_ping if math.isfinite(reader.next_ping) else None,
            "pong": reader.awaiting_pong,
            "seen": reader.last_activity,
        },
        separators=(",", ":"),
    ).encode("utf-8")
    if len(body) > MAX_OFFER:
        raise ValueError("offer too large")
    return LENGTH.pack(len(body)) + body


def body_length(head: bytes) -> int:
    """The body's length from the first LENGTH.size bytes; ValueError past MAX_OFFER."""
    (length,) = LENGTH.unpack_from(head)
    if length > MAX_OFFER:
        raise ValueError("offer too large")
    return int(length)


def decode(body: bytes) -> Offer:
    """An offer's body (after the length). Raises ValueError on anything malformed."""
    try:
        fields = json.loads(body)
        url = fields["url"]
        ping = fields["ping"]
        inbox = fields["inbox"]
        ip = fields["ip"]
        if not (isinstance(ip, str) and isinstance(inbox, list) and all(isinstance(t, str) for t in inbox)):
            raise ValueError("bad field types")
        if url is not None and not isinstance(url, str):
            raise ValueError("bad base url")
        reader = ReaderState(
            inbox=tuple(inbox),
            leftover=base64.b64decode(fields["buf"], validate=True),
            next_ping=math.inf if ping is None else float(ping),
            awaiting_pong=bool(fields["pong"]),
            last_activity=float(fields["seen"]),
        )
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed offer: {exc}") from None
    return Offer(ip, url, reader)

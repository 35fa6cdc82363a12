"""What a worker hands another with a connection (server.handoff), sans-IO.

An OFFER is one message on a mailbox (a SOCK_SEQPACKET pair): a 4-byte length, then a
JSON body (the client's IP, the base URL its handshake asked for, the socket's address
family and its reader's state), with the connection's descriptor attached (SCM_RIGHTS).
Whoever reads the message serves the connection.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
from dataclasses import dataclass

from server.connection import ReaderState

#: an offer's body at most: one message must fit a Unix socket's send buffer (~208 KiB);
#: a read's messages and a frame begun are nearly always far less (else: no handoff)
MAX_OFFER = 128 * 1024
LENGTH = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Offer:
    ip: str
    base_url: str | None
    reader: ReaderState
    #: the TCP socket's address family (the taker need not ask the kernel)
    family: int = socket.AF_INET


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
            "fam": offer.family,
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
        family = fields["fam"]
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError("not a TCP address family")
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
    return Offer(ip, url, reader, socket.AddressFamily(family))

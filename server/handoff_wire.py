"""What a worker hands another with a connection (server.handoff), sans-IO.

An OFFER is one message on a mailbox (a SOCK_SEQPACKET pair): a head (the body's length,
and when the giver sent it), then a JSON body (the client's IP, the base URL its handshake
asked for, the socket's address family, its reader's state and the session record its join
took), with the connection's descriptor attached (SCM_RIGHTS). Whoever reads the message
serves the connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import socket
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from server.connection import ReaderState
from server.store import SessionRecord

#: an offer's body at most: one message must fit a Unix socket's send buffer (~208 KiB);
#: a read's messages and a frame begun are nearly always far less (else: no handoff)
MAX_OFFER = 128 * 1024
#: a message's head: the body's length, and the giver's monotonic clock when it sent the
#: offer (one clock for every process on the host; only the giver reads it back, to take
#: back an offer that waited too long without receiving it)
HEAD = struct.Struct("!Id")


@dataclass(frozen=True, slots=True)
class Offer:
    ip: str
    base_url: str | None
    reader: ReaderState
    #: the TCP socket's address family (the taker need not ask the kernel)
    family: int = socket.AF_INET
    #: the session its join took, naming the taker for the receiver (server.ws)
    joined: SessionRecord | None = None


def neighbourhood() -> str:
    """Which workers can hand connections to each other: those of one uid (both ends
    check it) in one network namespace of one host (abstract socket names live there).
    "" if it cannot be told (no /proc): then nobody is a neighbour."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        net = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return ""
    return hashlib.sha256(f"{boot}/{net}/{os.geteuid()}".encode()).hexdigest()[:16]


def encode(offer: Offer, sent_at: float) -> bytes:
    """The offer as sent (head included). Raises ValueError past MAX_OFFER."""
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
            "rec": asdict(offer.joined) if offer.joined is not None else None,
        },
        separators=(",", ":"),
    ).encode("utf-8")
    if len(body) > MAX_OFFER:
        raise ValueError("offer too large")
    return HEAD.pack(len(body), sent_at) + body


def body_length(head: bytes) -> int:
    """The body's length from the first HEAD.size bytes; ValueError past MAX_OFFER."""
    length, _sent_at = HEAD.unpack_from(head)
    if length > MAX_OFFER:
        raise ValueError("offer too large")
    return int(length)


def sent_at(head: bytes) -> float:
    """When the giver sent an offer, from its first HEAD.size bytes."""
    return float(HEAD.unpack_from(head)[1])


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
        rec = fields["rec"]
        joined = None if rec is None else SessionRecord(**rec)
        reader = ReaderState(
            inbox=tuple(inbox),
            leftover=base64.b64decode(fields["buf"], validate=True),
            next_ping=math.inf if ping is None else float(ping),
            awaiting_pong=bool(fields["pong"]),
            last_activity=float(fields["seen"]),
        )
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed offer: {exc}") from None
    return Offer(ip, url, reader, socket.AddressFamily(family), joined)

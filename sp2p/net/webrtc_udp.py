"""U1 of docs/webrtc-tuning.md: read every datagram waiting on an ICE socket per wake-up.

asyncio's datagram transport reads one datagram per readiness callback, so each of the
~20,000 packets a second of a bulk transfer costs an epoll round, a callback and, in
aioice, an attempt to parse it as STUN that fails with an exception. `batch_reads`
replaces the socket's reader with one that drains up to BATCH datagrams into a reused
buffer and hands DTLS datagrams (first byte 20-63, RFC 7983) straight to the ICE
connection; STUN and anything else still go through aioice's protocol as before. aioice
then queues them for the DTLS task, which wakes once per batch instead of once per packet.

Guarded: when the loop, the transport or aioice's protocol lack what this uses, the
socket keeps asyncio's own reader.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: datagrams read per wake-up at most (then the loop runs its other callbacks)
BATCH = 64
#: largest datagram we read (the ICE sockets never see more than a UDP payload)
MAX_DATAGRAM = 65536


def batch_reads(protocol: Any) -> bool:
    """Install the batched reader on one aioice StunProtocol's socket; True if it did."""
    transport: Any = getattr(protocol, "transport", None)
    loop: Any = getattr(transport, "_loop", None)
    sock: Any = getattr(transport, "_sock", None)
    receiver: Any = getattr(protocol, "receiver", None)
    candidate: Any = getattr(protocol, "local_candidate", None)
    if (
        transport is None
        or sock is None
        or not hasattr(loop, "_add_reader")
        or not hasattr(loop, "_remove_reader")
        or not hasattr(transport, "_conn_lost")
        or not hasattr(receiver, "data_received")
        or not hasattr(candidate, "component")
        or getattr(transport, "_sp2p_batched", False)
    ):
        return False
    fd = sock.fileno()
    try:
        loop._selector.get_key(fd)  # asyncio's reader is in place (else it would replace ours)
    except (AttributeError, KeyError, ValueError):
        return False
    buffer = bytearray(MAX_DATAGRAM)
    view = memoryview(buffer)
    recv_into = sock.recvfrom_into
    component = candidate.component
    data_received = receiver.data_received
    datagram_received = protocol.datagram_received

    def read_ready() -> None:
        for _ in range(BATCH):
            if transport._conn_lost:
                return
            try:
                size, addr = recv_into(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            data = bytes(view[:size])
            if size and 19 < buffer[0] < 64:  # DTLS: not STUN, skip aioice's parse attempt
                data_received(data, component)
            else:
                datagram_received(data, addr)

    loop._remove_reader(fd)
    loop._add_reader(fd, read_ready)
    transport._sp2p_batched = True
    return True

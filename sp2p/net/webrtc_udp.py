"""U1 and G1 of docs/webrtc-tuning.md: batched UDP reads and writes on the ICE sockets.

U1: read every datagram waiting on an ICE socket per wake-up.

asyncio's datagram transport reads one datagram per readiness callback, so each of the
~20,000 packets a second of a bulk transfer costs an epoll round, a callback and, in
aioice, an attempt to parse it as STUN that fails with an exception. `batch_reads`
replaces the socket's reader with one that drains up to BATCH datagrams into a reused
buffer and hands DTLS datagrams (first byte 20-63, RFC 7983) straight to the ICE
connection; STUN and anything else still go through aioice's protocol as before. aioice
then queues them for the DTLS task, which wakes once per batch instead of once per packet.

G1: the DTLS records a loop iteration produces for one address leave together at its end
(`Outbox`), runs of equal-sized datagrams as one sendmsg with UDP_SEGMENT (Linux UDP GSO):
one system call and one wake-up of the peer's reader per run instead of per packet.

Guarded: when the loop, the transport or aioice's protocol lack what this uses, the
socket keeps asyncio's own reader and aioice's send path.
"""

from __future__ import annotations

import errno
import logging
import struct
from typing import Any

log = logging.getLogger(__name__)

#: datagrams read per wake-up at most (then the loop runs its other callbacks)
BATCH = 64
#: largest datagram we read (the ICE sockets never see more than a UDP payload)
MAX_DATAGRAM = 65536
#: Linux's SOL_UDP / UDP_SEGMENT (not in the socket module); the cmsg carries the segment size
SOL_UDP = 17
UDP_SEGMENT = 103
_SEGMENT_SIZE = struct.Struct("=H")
#: the kernel's cap on segments per GSO send (UDP_MAX_SEGMENTS)
MAX_SEGMENTS = 64
#: UDP payload one send may carry (IPv4: 65535 - 20 - 8)
MAX_GSO_BYTES = 65507
#: errors that mean this socket/kernel/route cannot segment: fall back for good on the socket
_NO_GSO = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)


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
    transport._sp2p_gso = True  # until the kernel refuses a segmented send (Outbox)
    return True


class Outbox:
    """Datagrams for one address on one ICE socket, sent together when the loop finishes its
    current iteration (G1): every packet a SACK batch or an application write produces."""

    def __init__(self, protocol: Any, addr: tuple[Any, ...]) -> None:
        self.protocol = protocol
        self.addr = addr
        self.transport: Any = protocol.transport
        self.pending: list[bytes] = []
        self._call_soon = self.transport._loop.call_soon
        #: counters the fast-path test reads: GSO sends and the datagrams they carried
        self.gso_sends = 0
        self.gso_datagrams = 0

    def put(self, datagram: bytes) -> None:
        if not self.pending:
            self._call_soon(self.flush)
        self.pending.append(datagram)

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        self.pending = []
        transport = self.transport
        if transport.is_closing():
            return  # as asyncio drops writes after close
        if transport._buffer or not transport._sp2p_gso:
            self._hand_back(pending)  # the socket is backed up (keep order) or cannot segment
            return
        self._send_runs(pending)

    def _send_runs(self, pending: list[bytes]) -> None:
        sock = self.transport._sock
        addr = self.addr
        count = len(pending)
        start = 0
        while start < count:
            size = len(pending[start])
            stop = min(count, start + min(MAX_SEGMENTS, MAX_GSO_BYTES // size))
            end = start + 1
            while end < stop and len(pending[end]) == size:
                end += 1
            if end < stop and end - start > 1 and len(pending[end]) < size:
                end += 1  # the last segment may be shorter (not after a lone larger one:
                # M2's 8 KiB probe on a 1500-byte path would take the next datagram down with it)
            try:
                if end - start == 1:
                    sock.sendto(pending[start], addr)
                else:
                    sock.sendmsg(pending[start:end], [(SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))],
                                 0, addr)
                    self.gso_sends += 1
                    self.gso_datagrams += end - start
            except (BlockingIOError, InterruptedError):
                self._hand_back(pending[start:])  # asyncio buffers them and waits for writability
                return
            except OSError as exc:
                if end - start > 1 and exc.errno in _NO_GSO:
                    log.debug("webrtc: UDP GSO refused (%s); one datagram per send on this socket", exc)
                    self.transport._sp2p_gso = False
                    self._hand_back(pending[start:])
                    return
                self.protocol.error_received(exc)  # dropped, as asyncio's sendto does
            start = end

    def _hand_back(self, datagrams: list[bytes]) -> None:
        """One asyncio sendto each: it sends or buffers in order and waits for writability."""
        for datagram in datagrams:
            self.transport.sendto(datagram, self.addr)


def outbox(ice_transport: Any) -> Outbox | None:
    """The Outbox for an aiortc RTCIceTransport's nominated pair, when its socket is one of
    ours with the batched reader in place (not a TURN relay); None: send through aioice."""
    try:
        pair = ice_transport._connection._nominated.get(1)
    except AttributeError:
        return None
    if pair is None:
        return None
    box: Outbox | None = pair.__dict__.get("_sp2p_outbox")
    if box is None and "_sp2p_outbox" not in pair.__dict__:
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        usable = getattr(transport, "_sp2p_batched", False) and hasattr(transport, "_buffer")
        box = Outbox(protocol, pair.remote_addr) if usable else None
        pair._sp2p_outbox = box
    return box

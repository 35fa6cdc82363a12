"""G1 of docs/webrtc-tuning.md (sp2p/net/webrtc_udp.Outbox): datagrams queued during a loop
iteration leave at its end, runs of equal size as one UDP GSO send, over a real loopback
socket; every datagram arrives whole and in order, and a socket whose kernel refuses
segmentation falls back to one datagram per send for good."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from sp2p.net.webrtc_udp import MAX_SEGMENTS, Outbox

#: Linux's SO_NO_CHECK: no UDP checksums on send, which makes the kernel refuse GSO (EINVAL)
SO_NO_CHECK = 11


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.errors: list[Exception] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


def _received(sink: socket.socket, count: int) -> list[bytes]:
    got = []
    sink.settimeout(5)
    while len(got) < count:
        got.append(sink.recv(65536))
    sink.settimeout(0.2)
    with contextlib.suppress(TimeoutError):
        got.append(sink.recv(65536))  # nothing more may come
    return got


async def _send_through_outbox(datagrams: list[bytes], *,
                               no_checksums: bool = False) -> tuple[Outbox, list[bytes], _Protocol]:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        transport, protocol = await loop.create_datagram_endpoint(_Protocol, local_addr=("127.0.0.1", 0))
        try:
            if no_checksums:
                transport._sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
            transport._sp2p_gso = True  # as webrtc_udp.batch_reads leaves it
            box = Outbox(protocol, sink.getsockname())
            for datagram in datagrams:
                box.put(datagram)
            assert box.pending  # nothing left before the loop's next iteration
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert not box.pending
            got = await asyncio.to_thread(_received, sink, len(datagrams))
        finally:
            transport.close()
    return box, got, protocol


def _datagrams(sizes: list[int]) -> list[bytes]:
    return [bytes([i % 251]) * size for i, size in enumerate(sizes)]


def test_runs_of_equal_size_leave_as_gso_sends_in_order() -> None:
    # 100 full-size: 64 (the kernel's cap) + 36 with the shorter one as last segment;
    # then 3 full + a short tail, then a lone short one (plain sendto)
    sizes = [1229] * 100 + [500] + [1229] * 3 + [57, 57]
    datagrams = _datagrams(sizes)
    box, got, protocol = asyncio.run(_send_through_outbox(datagrams))
    assert got == datagrams
    assert not protocol.errors
    assert (box.gso_sends, box.gso_datagrams) == (3, MAX_SEGMENTS + 37 + 4)


def test_large_datagrams_stay_under_the_64k_send() -> None:
    datagrams = _datagrams([8229] * 20)  # M1's jumbo packets: 7 per send at most
    box, got, _ = asyncio.run(_send_through_outbox(datagrams))
    assert got == datagrams
    assert box.gso_sends == 3 and box.gso_datagrams == 20


def test_a_lone_larger_datagram_leaves_alone() -> None:
    # M2's probes: an 8 KiB one refused on a 1500-byte path (EMSGSIZE) must not take the
    # 1.4 KB one after it down too, as one GSO send of both would
    datagrams = _datagrams([8229, 1449, 1229, 1229, 57])
    box, got, _ = asyncio.run(_send_through_outbox(datagrams))
    assert got == datagrams
    assert (box.gso_sends, box.gso_datagrams) == (1, 3)  # 8229, 1449 alone; 1229 x2 + 57


def test_a_socket_that_refuses_gso_falls_back_to_single_sends() -> None:
    datagrams = _datagrams([1229] * 10)
    box, got, protocol = asyncio.run(_send_through_outbox(datagrams, no_checksums=True))
    assert got == datagrams  # nothing lost in the fallback
    assert box.transport._sp2p_gso is False and box.gso_sends == 0
    assert not protocol.errors

"""A data-channel peer for the WebRTC benchmarks: stock aiortc, or sp2p's Channel.

Each peer runs in its own process; signalling travels through two queue-like objects
(`get(block, timeout)` / `put(item)`): multiprocessing queues (scripts/bench_webrtc.py) or
this process's stdin/stdout (`StdioQueue`, for a peer inside a network namespace,
scripts/bench_link.py).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import queue
import sys
import threading
import time
from typing import Any

MESSAGE = 262144
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024
TIMEOUT = 300.0


def relay_reader(inbox: Any, deliver: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            kind, payload = inbox.get(timeout=0.1)
        except queue.Empty:
            continue
        deliver(kind, payload)


async def paced_send(channel: Any, total: int) -> None:
    """`total` bytes in MESSAGE-sized dc.send() calls, paced by bufferedAmount and
    bufferedamountlow (the usual aiortc idiom)."""
    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = LOW_WATER
    channel.on("bufferedamountlow", low.set)
    block = os.urandom(MESSAGE)
    sent = 0
    while sent < total:
        if channel.bufferedAmount > HIGH_WATER:
            low.clear()
            await low.wait()
        channel.send(block)
        sent += MESSAGE


class MessageCounter:
    """The receiving end of a bench: bytes received, when the first came, `full` at `total`."""

    def __init__(self, total: int) -> None:
        self.total, self.got, self.first, self.filled = total, 0, 0.0, 0.0
        self.full = asyncio.Event()

    def attach(self, pc: Any) -> None:
        """Count every message of the data channel the peer `pc` opens."""

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            channel.on("message", self.on_message)

    def on_message(self, message: bytes) -> None:
        now = time.monotonic()
        if not self.first:
            self.first = now
        self.got += len(message)
        if self.got >= self.total and not self.full.is_set():
            self.filled = now
            self.full.set()


async def stock_peer(role: str, total: int, inbox: Any, outbox: Any, results: Any) -> None:
    """One peer of a bare aiortc data channel: 256 KiB dc.send() calls paced by bufferedAmount /
    bufferedamountlow (the usual aiortc idiom), aiortc as shipped. The receiver puts
    (first, last, bytes) on `results`; signalling goes through `inbox`/`outbox` (get/put).
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    loop = asyncio.get_running_loop()

    async def next_signal() -> tuple[str, dict[str, Any]]:
        item: tuple[str, dict[str, Any]] = await loop.run_in_executor(None, inbox.get, True, TIMEOUT)
        return item

    if role == "sender":
        channel = pc.createDataChannel("sp2p")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await pc.setLocalDescription(await pc.createOffer())
        outbox.put(("offer", {"sdp": pc.localDescription.sdp, "type": "offer"}))
        kind, answer = await next_signal()
        await pc.setRemoteDescription(RTCSessionDescription(**answer))
        await opened.wait()
        await paced_send(channel, total)
        await loop.run_in_executor(None, inbox.get, True, TIMEOUT)  # receiver's "done"
    else:
        counter = MessageCounter(total)
        counter.attach(pc)
        kind, offer = await next_signal()
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        await pc.setLocalDescription(await pc.createAnswer())
        outbox.put(("answer", {"sdp": pc.localDescription.sdp, "type": "answer"}))
        await asyncio.wait_for(counter.full.wait(), TIMEOUT)
        results.put((counter.first, counter.filled, counter.got))
        outbox.put(("done", {}))
    await pc.close()


def channel_peer(
    role: str, total: int, inbox: Any, outbox: Any, results: Any, profiler: cProfile.Profile | None
) -> None:
    """The same over sp2p's WebRTCPeer and blocking Channel (with its SCTP patches unless
    SP2P_WEBRTC_STOCK=1): the transport alone, no files, no encryption."""
    from sp2p.net.loop import LoopThread
    from sp2p.net.webrtc import WebRTCPeer

    stop = threading.Event()
    loop = LoopThread()
    peer = WebRTCPeer(offerer=role == "sender", send_signal=lambda k, p: outbox.put((k, p)), loop=loop)
    reader = threading.Thread(target=relay_reader, args=(inbox, peer.handle_signal, stop))
    reader.start()
    try:
        peer.start()
        channel = peer.wait_open(60)
        if profiler:  # cProfile sees one thread: the loop thread, where aiortc runs
            loop.call_soon(profiler.enable)
        if role == "sender":
            block = os.urandom(MESSAGE)
            sent = 0
            while sent < total:
                channel.send(block)
                sent += MESSAGE
            channel.recv(TIMEOUT)  # receiver's one-byte "done"
        else:
            got = 0
            first = 0.0
            while got < total:
                data = channel.recv(TIMEOUT)
                if not data:
                    raise SystemExit("channel closed early")
                if not first:
                    first = time.monotonic()
                got += len(data)
            results.put((first, time.monotonic(), got))
            channel.send(b"!")
            channel.recv(TIMEOUT)  # sender closes
        if profiler:
            disabled = threading.Event()
            loop.call_soon(lambda: (profiler.disable(), disabled.set()))
            disabled.wait(10)
        channel.close()
    finally:
        stop.set()
        reader.join()
        peer.close()
        loop.stop()


class StdioQueue:
    """The `get`/`put` of a multiprocessing queue over this process's stdin/stdout, each item
    one JSON line tagged with `tag`; the parent relays the signalling lines to the other peer."""

    _inbox: queue.Queue[Any] | None = None

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._lock = threading.Lock()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Raises queue.Empty after `timeout`, like multiprocessing's queue."""
        if StdioQueue._inbox is None:
            StdioQueue._inbox = queue.Queue()
            threading.Thread(target=self._read_stdin, args=(StdioQueue._inbox,), daemon=True).start()
        item = StdioQueue._inbox.get(block, timeout)
        if item is None:
            raise EOFError("parent closed stdin")
        return tuple(item)

    @staticmethod
    def _read_stdin(inbox: queue.Queue[Any]) -> None:
        for line in sys.stdin:
            inbox.put(json.loads(line))
        inbox.put(None)

    def put(self, item: Any) -> None:
        with self._lock:
            sys.stdout.write(json.dumps([self.tag, item]) + "\n")
            sys.stdout.flush()


def stdio_peer(role: str, total: int, mode: str) -> int:
    """One peer with its signalling on stdin/stdout ("signal" lines) and the receiver's result
    as a "result" line. mode "stock": bare aiortc; "tuned": sp2p's Channel."""
    inbox, results = StdioQueue("signal"), StdioQueue("result")
    if mode == "stock":
        asyncio.run(stock_peer(role, total, inbox, inbox, results))
    else:
        channel_peer(role, total, inbox, inbox, results, None)
    return 0

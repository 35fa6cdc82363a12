"""An open aiortc data channel seen as a blocking `Channel` (byte stream).

Outbound: each send() call starts a new message and is split at 256 KiB, the
largest message Go and browser peers accept; it blocks while more than
`HIGH_WATER` bytes wait in aiortc (resuming at `bufferedamountlow`).
Inbound: messages are queued as they arrive and handed out one per recv();
bytes not yet read count against our SCTP receive window, so a slow reader
slows the sender down instead of growing the queue.

Everything touching aiortc runs on the LoopThread; public methods are called
from any other thread.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sp2p.net import webrtc_sctp as sctp_tuning
from sp2p.net.channel import Channel, ChannelClosed, Outgoing, ParallelTcpHost, TransportKind
from sp2p.net.loop import LoopClosed, LoopThread

if TYPE_CHECKING:
    from aiortc import RTCDataChannel

#: largest data-channel message we send (client.md §4.8, appendix B item 11)
MAX_MESSAGE = 262144
#: send() blocks while aiortc holds more than this many unsent bytes ...
HIGH_WATER = 2 * 1024 * 1024
#: ... and resumes once it drained to this
LOW_WATER = 512 * 1024

class DataChannelStream:
    """Blocking byte-stream view of an open RTCDataChannel. Create on the loop thread."""

    def __init__(
        self,
        loop: LoopThread,
        channel: RTCDataChannel,
        *,
        relay: bool,
        on_close: Callable[[], None],
        early: Sequence[bytes | str] = (),
    ) -> None:
        self.transport = TransportKind.WEBRTC_RELAY if relay else TransportKind.WEBRTC
        self._loop = loop
        self._dc = channel
        self._sctp = channel.transport
        self._on_close_hook = on_close  # closes the peer connection (blocking)
        #: the largest message we send; the framing above sizes Data chunks so a frame fits one
        self.message_limit: int | None = _message_limit(sctp_tuning.remote_max_message_size(self._sctp))
        self._cond = threading.Condition()
        self._inbox: collections.deque[bytes] = collections.deque()
        self._eof = False  # peer closed the channel in an orderly way
        self._error: str | None = None  # the connection broke
        self._closed_locally = False
        self._writable = asyncio.Event()
        self._writable.set()
        channel.bufferedAmountLowThreshold = LOW_WATER
        for message in early:  # arrived before "open" (see WebRTCPeer._setup)
            self._on_message(message)
        channel.on("message", self._on_message)
        channel.on("bufferedamountlow", self._writable.set)
        channel.on("close", self._on_close)
        if channel.readyState != "open":
            self._on_close()

    # -- any thread ---------------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        return int(self._dc.bufferedAmount)

    @property
    def round_trip(self) -> float | None:
        """SCTP's least round trip, the handshake's included (webrtc_sctp_rtt): a far link
        starts adaptive compression at `-compress N`."""
        return sctp_tuning.round_trip(self._sctp)

    @property
    def same_host(self) -> bool:
        return False  # not known: adaptive compression measures the path

    def parallel_tcp(self) -> ParallelTcpHost | None:
        return None  # SCTP already multiplexes; parallel TCP needs a TCP primary

    def send(self, data: Outgoing) -> None:
        """Send `data` as one or more messages of at most 256 KiB; blocks on back-pressure."""
        if not data:
            return
        self._check_writable()
        limit = self.message_limit or MAX_MESSAGE
        if len(data) <= limit:
            pieces = [bytes(data)]
        else:
            pieces = [bytes(data[i : i + limit]) for i in range(0, len(data), limit)]
        try:
            self._loop.call(self._send_pieces(pieces))
        except LoopClosed as exc:
            raise ChannelClosed("WebRTC channel closed") from exc

    def recv(self, timeout: float | None = None) -> bytes:
        """Next message's bytes; b"" at orderly end; TimeoutError; ChannelClosed on failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self._closed_locally:
                    raise ChannelClosed("WebRTC channel closed locally")
                if self._error is not None:
                    raise ChannelClosed(self._error)
                if self._eof:
                    return b""
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("no data from peer within timeout")
                self._cond.wait(remaining)
            data = self._inbox.popleft()
        self._loop.call_soon(sctp_tuning.release, self._sctp, len(data))
        return data

    def close(self) -> None:
        """Flush what was sent (bounded), then close the peer connection. Idempotent."""
        with self._cond:
            if self._closed_locally:
                return
            self._closed_locally = True
            self._cond.notify_all()
        self._loop.call_soon(self._writable.set)  # wake a blocked send()
        self._on_close_hook()

    # -- loop thread ----------------------------------------------------------------

    def fail(self, reason: str) -> None:
        """The connection broke: pending and future calls raise ChannelClosed."""
        with self._cond:
            if self._error is None and not self._eof:
                self._error = reason
            self._cond.notify_all()
        self._writable.set()

    def _check_writable(self) -> None:
        if self._closed_locally:
            raise ChannelClosed("WebRTC channel closed locally")
        if self._error is not None:
            raise ChannelClosed(self._error)
        if self._eof:
            raise ChannelClosed("peer closed the WebRTC channel")

    async def _send_pieces(self, pieces: list[bytes]) -> None:
        dc = self._dc
        for piece in pieces:
            while dc.bufferedAmount > HIGH_WATER:
                self._check_writable()
                self._writable.clear()
                await self._writable.wait()
            self._check_writable()
            if dc.readyState != "open":
                raise ChannelClosed("WebRTC channel is not open")
            dc.send(piece)

    def _on_message(self, message: bytes | str) -> None:
        data = message.encode() if isinstance(message, str) else message
        if not data:
            return  # recv() never returns b"" except at end of stream
        sctp_tuning.hold(self._sctp, len(data))
        with self._cond:
            self._inbox.append(data)
            self._cond.notify()

    def _on_close(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        self._writable.set()


def _message_limit(remote_max: int) -> int:
    if remote_max <= 0:
        return MAX_MESSAGE
    return min(MAX_MESSAGE, remote_max)


def _implements_channel(stream: DataChannelStream) -> Channel:
    return stream  # mypy proves DataChannelStream satisfies the Channel protocol

"""The one byte-stream interface every transport offers to the transfer code.

TCP sockets and WebRTC data channels both implement `Channel`, so the flow never
knows which transport won the race.
"""

from __future__ import annotations

import socket
from enum import StrEnum
from typing import Protocol, TypeAlias

#: what send() takes: TCP writes any buffer as is, WebRTC copies it into messages
Outgoing: TypeAlias = bytes | bytearray | memoryview


class ChannelClosed(Exception):
    """The channel was closed (locally or by the peer) or broke."""


class TransportKind(StrEnum):
    """What carries a channel. Code decides on the member; the value is only for display."""

    TCP = "TCP"
    WEBRTC = "WebRTC"
    #: WebRTC through a TURN relay
    WEBRTC_RELAY = "WebRTC (relay)"


class ParallelTcpHost(Protocol):
    """What parallel TCP (client.md §3.11) needs from the primary connection."""

    #: True on the side that dialed the primary: it dials the secondaries too
    dialed: bool
    #: the race's listener, kept for the secondaries the peer dials (None once closed)
    spare_listener: socket.socket | None

    def peer_address(self) -> tuple[str, int]: ...

    def adopt_listener(self, listener: socket.socket) -> None:
        """Take ownership of the race's listener; closed with the channel at the latest."""
        ...

    def close_spare_listener(self) -> None: ...


class Channel(Protocol):
    transport: TransportKind
    #: the largest message send() writes whole (a WebRTC data channel); None: a byte stream (TCP)
    message_limit: int | None

    def parallel_tcp(self) -> ParallelTcpHost | None:
        """The primary-connection side of parallel TCP, or None where it cannot run (WebRTC)."""
        ...

    def send(self, data: Outgoing) -> None:
        """Send all of `data`, blocking while the transport applies back-pressure.

        A message-based transport splits at 256 KiB; callers write each frame (and the
        32-byte key-confirmation MAC) with its own call, so frames start on message boundaries.
        Raises ChannelClosed.
        """
        ...

    def recv(self, timeout: float | None = None) -> bytes:
        """Return the next bytes available (never empty), waiting up to `timeout` seconds.

        Returns b"" at orderly end of stream. Raises TimeoutError when nothing arrived in
        time, ChannelClosed when the channel broke.
        """
        ...

    def close(self) -> None:
        """Close; idempotent, never raises."""
        ...

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by send() but not yet handed to the network (for TCP: not yet sent
        by the kernel)."""
        ...

    @property
    def round_trip(self) -> float | None:
        """The transport's round-trip time in seconds, None where unknown (TCP: the kernel's smoothed
        RTT; WebRTC: the least SCTP saw, its handshake's included)."""
        ...

    @property
    def same_host(self) -> bool:
        """The peer runs on this host (False where unknown)."""
        ...


class ChannelWrapper:
    """A `Channel` that passes everything to `inner`; subclasses change what they add."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.transport = inner.transport
        self.message_limit = inner.message_limit

    def parallel_tcp(self) -> ParallelTcpHost | None:
        return self.inner.parallel_tcp()

    def send(self, data: Outgoing) -> None:
        self.inner.send(data)

    def recv(self, timeout: float | None = None) -> bytes:
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()

    @property
    def buffered_amount(self) -> int:
        return self.inner.buffered_amount

    @property
    def round_trip(self) -> float | None:
        return self.inner.round_trip

    @property
    def same_host(self) -> bool:
        return self.inner.same_host


class PrefixedChannel(ChannelWrapper):
    """A channel with bytes already read off it (e.g. after the confirmation MAC) put back in front."""

    def __init__(self, inner: Channel, prefix: bytes) -> None:
        super().__init__(inner)
        self._prefix = prefix

    def recv(self, timeout: float | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self.inner.recv(timeout)


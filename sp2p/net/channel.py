"""The one byte-stream interface every transport offers to the transfer code.

TCP sockets and WebRTC data channels both implement `Channel`, so the flow never
knows which transport won the race.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

#: what send() takes: TCP writes any buffer as is, WebRTC copies it into messages
Outgoing: TypeAlias = bytes | bytearray | memoryview


class ChannelClosed(Exception):
    """The channel was closed (locally or by the peer) or broke."""


class Channel(Protocol):
    #: human-readable transport name shown in the summary: "TCP", "WebRTC", "WebRTC (relay)"
    transport: str

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
        """Bytes accepted by send() but not yet handed to the network (0 for TCP)."""
        ...


class PrefixedChannel:
    """A channel with bytes already read off it (e.g. after the confirmation MAC) put back in front."""

    def __init__(self, inner: Channel, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix
        self.transport = inner.transport

    def send(self, data: Outgoing) -> None:
        self.inner.send(data)

    def recv(self, timeout: float | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()

    @property
    def buffered_amount(self) -> int:
        return self.inner.buffered_amount


def innermost(channel: Channel) -> Channel:
    """The transport channel under any wrappers (prefix buffers, owned mappings or peers)."""
    while (inner := getattr(channel, "inner", None)) is not None:
        channel = inner
    return channel

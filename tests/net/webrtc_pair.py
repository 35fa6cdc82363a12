"""In-memory signaling between two real WebRTCPeers in one process.

Not a mock: it is the (thread-safe) transport that carries offer/answer/candidate/
connected between two real aiortc peers, with an optional rewrite hook so tests can
reshape what a Go or browser peer would send (e.g. trickled candidates).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sp2p.net.webrtc import WebRTCPeer
from sp2p.net.webrtc_channel import DataChannelStream

Message = tuple[str, dict[str, Any]]
Rewrite = Callable[[str, dict[str, Any]], list[Message]]

OPEN_TIMEOUT = 30.0


class Relay:
    """Carries signals sender → receiver and back, logging each one."""

    def __init__(self, rewrite: Rewrite | None = None) -> None:
        self._lock = threading.Condition()
        self._rewrite = rewrite
        self.peers: dict[str, WebRTCPeer] = {}
        self.log: list[tuple[str, str, dict[str, Any]]] = []

    def send_from(self, side: str) -> Callable[[str, dict[str, Any]], None]:
        other = "receiver" if side == "sender" else "sender"

        def send(kind: str, payload: dict[str, Any]) -> None:
            with self._lock:
                self.log.append((side, kind, payload))
                self._lock.notify_all()
            messages = self._rewrite(kind, payload) if self._rewrite else [(kind, payload)]
            for out_kind, out_payload in messages:
                self.peers[other].handle_signal(out_kind, out_payload)

        return send

    def sent(self, side: str, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for s, k, p in self.log if s == side and k == kind]

    def wait_sent(self, side: str, kind: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """`sent`, once at least one such signal went out (or `timeout` passed). A peer hands
        its signals to a notifier thread, so one it queued as its channel opened (`connected`)
        may still be on its way when data has already crossed the channel."""
        with self._lock:
            self._lock.wait_for(lambda: any(s == side and k == kind for s, k, _ in self.log), timeout)
            return [p for s, k, p in self.log if s == side and k == kind]


def make_pair(relay: Relay, **kwargs: Any) -> tuple[WebRTCPeer, WebRTCPeer]:
    sender = WebRTCPeer(offerer=True, send_signal=relay.send_from("sender"), **kwargs)
    receiver = WebRTCPeer(offerer=False, send_signal=relay.send_from("receiver"), **kwargs)
    relay.peers.update(sender=sender, receiver=receiver)
    return sender, receiver


@contextmanager
def open_pair(
    rewrite: Rewrite | None = None, *, start_receiver_first: bool = True
) -> Iterator[tuple[DataChannelStream, DataChannelStream, Relay]]:
    """Two connected peers; yields (sender channel, receiver channel, relay); closes both."""
    relay = Relay(rewrite)
    sender, receiver = make_pair(relay)
    try:
        if start_receiver_first:
            receiver.start()
        sender.start()
        if not start_receiver_first:
            receiver.start()
        yield sender.wait_open(OPEN_TIMEOUT), receiver.wait_open(OPEN_TIMEOUT), relay
    finally:
        sender.close()
        receiver.close()


def read_exactly(channel: DataChannelStream, size: int, timeout: float = 30.0) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        data = channel.recv(timeout)
        if not data:
            raise EOFError(f"end of stream after {len(buf)} of {size} bytes")
        buf += data
    return bytes(buf)

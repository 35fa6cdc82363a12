"""A confirmed channel plus the frame codec and AEAD of one session: the encrypted stream."""

from __future__ import annotations

import threading
import time

from sp2p.net.channel import Channel, ChannelClosed
from sp2p.proto.frames import EOF, FrameDecoder, FrameOpener, FrameSealer, SealedFrame
from sp2p.proto.frames import Frame as Frame
from sp2p.proto.keys import SessionKeys
from sp2p.proto.transfer import Liveness


class FramedChannel:
    """Thread-safe frame writer and a single-consumer frame reader over one channel."""

    def __init__(self, channel: Channel, keys: SessionKeys) -> None:
        self.channel = channel
        self.sealer = FrameSealer(keys.send_key)
        self.opener = FrameOpener(keys.recv_key)
        self.decoder = FrameDecoder()
        self.write_lock = threading.Lock()
        self.liveness = Liveness(time.monotonic())
        self.bytes_sent = 0

    @property
    def transport(self) -> str:
        return self.channel.transport

    def send_frame(self, msg_type: int, body: bytes) -> None:
        with self.write_lock:
            wire = self.sealer.seal(msg_type, body)
            self.send_wire(wire)

    def send_wire(self, wire: bytes) -> None:
        """Write an already sealed frame; callers keep sequence order (hold write_lock or own the order)."""
        self.channel.send(wire)
        self.bytes_sent += len(wire)
        self.liveness.on_sent(time.monotonic())

    def recv_frame(self, timeout: float | None) -> Frame | None:
        """Next authenticated frame, None at orderly end of stream; TimeoutError when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sealed = self.decoder.next_frame()
            if isinstance(sealed, SealedFrame):
                frame = self.opener.open(sealed)
                self.liveness.on_received(time.monotonic(), frame.msg_type)
                return frame
            if sealed is EOF:
                return None
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                raise TimeoutError
            try:
                data = self.channel.recv(timeout=remaining)
            except ChannelClosed:
                data = b""
            self.decoder.receive_data(data)

    def try_send_frame(self, msg_type: int, body: bytes) -> bool:
        """Best-effort (Cancel/Error on the way out): never raises, never blocks on a held lock."""
        if not self.write_lock.acquire(timeout=1.0):
            return False
        try:
            self.send_wire(self.sealer.seal(msg_type, body))
            return True
        except Exception:  # noqa: BLE001 - best effort on a failing connection
            return False
        finally:
            self.write_lock.release()

    def close(self) -> None:
        self.channel.close()

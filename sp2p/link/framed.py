"""The encrypted frame stream of one session over its confirmed channel(s).

`FrameLink` is what the transfer pipelines see. `FramedChannel` is the single-channel
link; the multi-stream link of parallel TCP (link/multistream.py) has the same shape,
so the pipelines never know how many sockets carry the frames.

Sending is split in three steps so frames can be encrypted on worker threads yet
written strictly in order: `reserve` (in order, under the caller's lock) picks the
stream and sequence number, `seal` (any thread) encrypts, `send_sealed` (in order) writes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple, Protocol

from sp2p.errors import ConnectionLost
from sp2p.net.channel import Channel, ChannelClosed
from sp2p.proto.constants import FRAME_OVERHEAD, MAX_CHUNK_SIZE, MAX_FRAME_SIZE, MsgType
from sp2p.proto.frames import EOF, FrameDecoder, FrameOpener, FrameSealer, SealedFrame
from sp2p.proto.frames import Frame as Frame
from sp2p.proto.keys import SessionKeys
from sp2p.proto.liveness import Liveness


class Slot(NamedTuple):
    """Where a frame will go: its stream, that stream's sequence number, and the data index."""

    stream: int
    seq: int
    #: global data-frame counter g of parallel TCP; None on a single channel and for control frames
    data_index: int | None = None


class Sealed(NamedTuple):
    stream: int
    #: the whole frame; may be a view of a buffer the link reuses once send_sealed returned
    wire: bytes | memoryview
    msg_type: int


class FrameLink(Protocol):
    liveness: Liveness
    streams: int

    @property
    def transport(self) -> str: ...

    @property
    def message_limit(self) -> int | None:
        """The largest frame that travels as one message (WebRTC), None on byte streams."""
        ...

    def reserve(self, msg_type: int) -> Slot: ...

    def seal(self, slot: Slot, msg_type: int, body: bytes) -> Sealed: ...

    def send_sealed(self, sealed: Sealed) -> None: ...

    def backlog(self) -> int:
        """Bytes written that the transport has not sent yet (the link is behind)."""
        ...

    def round_trip(self) -> float | None:
        """The link's round-trip time in seconds, None where unknown."""
        ...

    def same_host(self) -> bool:
        """The peer runs on this host (False where unknown)."""
        ...

    def send_frame(self, msg_type: int, body: bytes) -> None: ...

    def try_send_frame(self, msg_type: int, body: bytes) -> bool: ...

    def recv_frame(self, timeout: float | None) -> Frame | None: ...

    def drain_incoming(self, timeout: float) -> None:
        """Read and discard until the peer closes or `timeout` passes (never raises)."""
        ...

    def close(self) -> None: ...


#: frame buffers kept for reuse: enough for a full send pipeline plus its workers
POOL_KEEP = 32
#: a reused buffer holds a full chunk, with room for zstd's worst-case growth and a data index
POOL_BUFFER = FRAME_OVERHEAD + MAX_CHUNK_SIZE + 4096


class FramedChannel:
    """Thread-safe frame writer and a single-consumer frame reader over one channel.

    Sealed frames are written into reused buffers: a fresh 256 KiB allocation per frame,
    freed on another thread, makes glibc return and re-fault its memory on every frame.
    """

    streams = 1

    def __init__(self, channel: Channel, keys: SessionKeys) -> None:
        self.channel = channel
        self.sealer = FrameSealer(keys.send_key)
        self.opener = FrameOpener(keys.recv_key)
        self.decoder = FrameDecoder()
        self.write_lock = threading.Lock()
        self.liveness = Liveness(time.monotonic())
        self.bytes_sent = 0
        self._buffers: deque[bytearray] = deque()
        self._discard: int | None = None

    @property
    def transport(self) -> str:
        return self.channel.transport

    @property
    def message_limit(self) -> int | None:
        return self.channel.message_limit

    # -- sending -----------------------------------------------------------------------------
    def reserve(self, msg_type: int) -> Slot:
        return Slot(0, self.sealer.reserve())

    def seal(self, slot: Slot, msg_type: int, body: bytes) -> Sealed:
        need = FRAME_OVERHEAD + len(body)
        if need > POOL_BUFFER:  # rare; seal_into refuses what is over the limit before writing
            buf = bytearray(need if need <= 4 + MAX_FRAME_SIZE else 0)
        else:
            try:
                buf = self._buffers.pop()
            except IndexError:
                buf = bytearray(POOL_BUFFER)
        n = self.sealer.seal_into(buf, slot.seq, msg_type, body)
        return Sealed(0, memoryview(buf)[:n], msg_type)

    def send_sealed(self, sealed: Sealed) -> None:
        """Write a sealed frame; callers keep sequence order."""
        with self.write_lock:
            self._write(sealed.wire)
        # every Channel has copied or written the bytes once send() returned
        if isinstance(sealed.wire, memoryview) and len(self._buffers) < POOL_KEEP:
            buf = sealed.wire.obj
            if isinstance(buf, bytearray) and len(buf) == POOL_BUFFER:
                self._buffers.append(buf)

    def backlog(self) -> int:
        return self.channel.buffered_amount

    def round_trip(self) -> float | None:
        return self.channel.round_trip

    def same_host(self) -> bool:
        return self.channel.same_host

    def send_frame(self, msg_type: int, body: bytes) -> None:
        """One frame of a handshake (the pumps write through send_sealed and handle a closed
        channel themselves). A link that broke is ConnectionLost here, as an end of stream is
        to whoever reads the answer: ChannelClosed reached the CLI as an unexpected error."""
        with self.write_lock:
            try:
                self._write(self.sealer.seal(msg_type, body))
            except ChannelClosed as exc:
                raise ConnectionLost(str(exc)) from exc

    def try_send_frame(self, msg_type: int, body: bytes) -> bool:
        """Best-effort (Cancel/Error on the way out): never raises, never blocks on a held lock."""
        if not self.write_lock.acquire(timeout=1.0):
            return False
        try:
            self._write(self.sealer.seal(msg_type, body))
            return True
        except Exception:  # noqa: BLE001 - best effort on a failing connection
            return False
        finally:
            self.write_lock.release()

    def _write(self, wire: bytes | memoryview) -> None:
        self.channel.send(wire)
        self.bytes_sent += len(wire)
        self.liveness.on_sent(time.monotonic())

    # -- receiving ---------------------------------------------------------------------------
    def recv_frame(self, timeout: float | None) -> Frame | None:
        """Next authenticated frame, None at orderly end of stream; TimeoutError when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sealed = self.decoder.next_frame()
            if isinstance(sealed, SealedFrame):
                frame = self.opener.open(sealed)
                self.liveness.on_received(time.monotonic(), frame.msg_type, len(frame.body))
                if self._discard is not None and frame.msg_type != MsgType.HEARTBEAT:
                    expected, self._discard = self._discard, None
                    if frame.msg_type == expected:
                        continue
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
            if data:
                self.liveness.on_bytes(time.monotonic())  # alive, even mid-frame on a slow path
            self.decoder.receive_data(data)

    def discard_next(self, msg_type: int) -> None:
        """Drop the peer's next frame if it is of `msg_type`: an answer nobody waits for."""
        self._discard = msg_type

    def drain_incoming(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if not self.channel.recv(timeout=left):
                    return
            except Exception:  # noqa: BLE001 - the connection is going away either way
                return

    def close(self) -> None:
        self.channel.close()

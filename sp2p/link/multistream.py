"""The frame link of parallel TCP (client.md §3.11): one primary and N-1 secondary streams.

Data frame g travels on stream g mod N with that stream's key and its own sequence
numbers, its plaintext prefixed by g; every other frame travels on the primary
(stream 0), whose counters continue from the negotiation. The receiver reads every
stream on its own thread (so decryption runs in parallel), puts Data back in order
and hands frames out one at a time like a single channel would.

Improvements over the original (W2, W22): Done is held back until every Data frame
it counts has been delivered, and the sender lets the secondaries drain before it
writes Done; each stream must carry exactly the indices g ≡ stream (mod N) in order,
so a duplicate or replayed index is an integrity error; at most REASSEMBLY_WINDOW
frames wait out of order (a stream that runs ahead is simply not read meanwhile).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence

from sp2p.errors import IntegrityError, RemoteProtocolError, Sp2pError, TransferError
from sp2p.link.framed import Frame, FramedChannel, Sealed, Slot
from sp2p.log import get_logger
from sp2p.net.channel import Channel, ChannelClosed
from sp2p.net.tcp import TcpChannel
from sp2p.proto.constants import MsgType
from sp2p.proto.frames import EOF, FrameDecoder, FrameOpener, FrameSealer, SealedFrame
from sp2p.proto.messages import Totals
from sp2p.proto.parallel import DATA_INDEX_BYTES, REASSEMBLY_WINDOW, pack_data_index, unpack_data_index
from sp2p.record import field, record

log = get_logger(__name__)

_STOP_FRAMES = (MsgType.CANCEL, MsgType.ERROR)

#: how long the sender waits for secondaries to hand their data to the peer before Done
DRAIN_WAIT = 30.0


@record()
class _Stream:
    channel: Channel
    sealer: FrameSealer
    opener: FrameOpener
    decoder: FrameDecoder
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    #: the next data index this stream must carry (receiving side)
    expect_index: int = 0
    ended: bool = False


class MultiStreamLink:
    """A FrameLink over the primary FramedChannel plus its confirmed secondaries."""

    def __init__(self, primary: FramedChannel, secondaries: Sequence[tuple[Channel, bytes, bytes]]) -> None:
        """`secondaries`: (channel, send key, receive key) for streams 1..N-1, in order."""
        self.primary = primary
        self.liveness = primary.liveness
        first = _Stream(primary.channel, primary.sealer, primary.opener, primary.decoder, primary.write_lock)
        self._streams = [first] + [
            _Stream(ch, FrameSealer(tx), FrameOpener(rx), FrameDecoder()) for ch, tx, rx in secondaries
        ]
        self.streams = len(self._streams)
        for i, stream in enumerate(self._streams):
            stream.expect_index = i
        self._next_index = 0  # sending side
        self._cond = threading.Condition()
        self._data: dict[int, Frame] = {}
        self._delivered = 0
        #: control frames in arrival order, each with the first data index that follows it
        self._control: deque[tuple[Frame, int]] = deque()
        self._error: BaseException | None = None
        self._closed = False
        self._readers_started = False
        self._done_delivered = False

    @property
    def transport(self) -> str:
        return self.primary.transport

    @property
    def message_limit(self) -> int | None:
        return None  # parallel TCP: byte streams

    # -- sending -----------------------------------------------------------------------------
    def reserve(self, msg_type: int) -> Slot:
        if msg_type != MsgType.DATA:
            return Slot(0, self._streams[0].sealer.reserve())
        g = self._next_index
        self._next_index = g + 1
        stream = g % self.streams
        return Slot(stream, self._streams[stream].sealer.reserve(), g)

    def seal(self, slot: Slot, msg_type: int, body: bytes) -> Sealed:
        if slot.data_index is not None:
            body = pack_data_index(slot.data_index) + body
        wire = self._streams[slot.stream].sealer.seal_at(slot.seq, msg_type, body)
        return Sealed(slot.stream, wire, msg_type)

    def send_sealed(self, sealed: Sealed) -> None:
        if sealed.msg_type == MsgType.DONE:
            self._drain_secondaries()
        stream = self._streams[sealed.stream]
        with stream.write_lock:
            stream.channel.send(sealed.wire)
        self.liveness.on_sent(time.monotonic())

    def backlog(self) -> int:
        return sum(stream.channel.buffered_amount for stream in self._streams)

    def round_trip(self) -> float | None:
        return self.primary.round_trip()

    def same_host(self) -> bool:
        return self.primary.same_host()

    def send_frame(self, msg_type: int, body: bytes) -> None:
        self.primary.send_frame(msg_type, body)

    def try_send_frame(self, msg_type: int, body: bytes) -> bool:
        return self.primary.try_send_frame(msg_type, body)

    def _drain_secondaries(self) -> None:
        """W2 for receivers that act on Done at once: let the data reach the peer first."""
        deadline = time.monotonic() + DRAIN_WAIT
        for stream in self._streams[1:]:
            while _unsent_bytes(stream.channel) > 0 and time.monotonic() < deadline:
                time.sleep(0.005)

    # -- receiving ---------------------------------------------------------------------------
    def _start_readers(self) -> None:
        if self._readers_started:
            return
        self._readers_started = True
        for i in range(self.streams):
            threading.Thread(target=self._reader, args=(i,), name=f"sp2p-stream-{i}", daemon=True).start()

    def _reader(self, index: int) -> None:
        stream = self._streams[index]
        try:
            while not self._closed:
                sealed = stream.decoder.next_frame()
                if isinstance(sealed, SealedFrame):
                    self._accept(stream, index, stream.opener.open(sealed))
                    continue
                if sealed is EOF:
                    break
                try:
                    data = stream.channel.recv(timeout=1.0)
                except TimeoutError:
                    continue
                except ChannelClosed:
                    data = b""
                stream.decoder.receive_data(data)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            with self._cond:
                if self._error is None and not self._closed:
                    self._error = exc
                self._cond.notify_all()
        finally:
            with self._cond:
                stream.ended = True
                self._cond.notify_all()

    def _accept(self, stream: _Stream, index: int, frame: Frame) -> None:
        self.liveness.on_received(time.monotonic(), frame.msg_type, len(frame.body))
        with self._cond:
            if frame.msg_type != MsgType.DATA:
                # data this stream carries from now on was written after this frame
                self._control.append((frame, stream.expect_index))
                self._cond.notify_all()
                return
            if len(frame.body) < DATA_INDEX_BYTES:
                raise RemoteProtocolError("parallel data frame without its index")
            g = unpack_data_index(frame.body)
            if g != stream.expect_index:
                raise IntegrityError(
                    f"parallel stream {index} carried data index {g}, expected {stream.expect_index}"
                )
            stream.expect_index = g + self.streams
            # a stream that runs ahead waits (and TCP back-pressures its sender)
            while g >= self._delivered + REASSEMBLY_WINDOW and not self._closed and self._error is None:
                self._cond.wait(0.5)
            self._data[g] = Frame(frame.msg_type, frame.seq, frame.body[DATA_INDEX_BYTES:])
            self._cond.notify_all()

    def recv_frame(self, timeout: float | None) -> Frame | None:
        """Next frame in order; Done only once all the Data it counts was handed out (W2)."""
        self._start_readers()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                frame = self._next_ready()
                if frame is not None:
                    return frame
                if self._error is not None:
                    raise self._error
                if self._streams[0].ended and not self._control:
                    return None
                if self._stream_lost():
                    raise TransferError("a parallel connection to the peer closed before all data arrived")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)

    def _stream_lost(self) -> bool:
        """The stream that must carry the next Data frame ended before Done was handed out."""
        if self._done_delivered or self._control:
            return False
        return self._streams[self._delivered % self.streams].ended

    def _next_ready(self) -> Frame | None:
        head, barrier = self._control[0] if self._control else (None, 0)
        if head is not None and head.msg_type in _STOP_FRAMES:
            return self._control.popleft()[0]  # the peer gave up: say so at once
        g = self._delivered
        if g in self._data and (head is None or g < barrier):
            self._delivered = g + 1
            self._cond.notify_all()
            return self._data.pop(g)
        if head is None:
            return None
        if head.msg_type == MsgType.DONE:
            if not self._done_ready(head):
                return None
            self._done_delivered = True
        # a control frame follows every Data frame its stream carried before it (Metadata: none)
        elif g < barrier - self.streams + 1:
            return None
        return self._control.popleft()[0]

    def _done_ready(self, done: Frame) -> bool:
        try:
            expected = Totals.from_json(done.body).chunk_count
        except Sp2pError:
            return True  # malformed: let the transfer machine report it
        if self._delivered >= expected:
            return True
        # data that can no longer arrive: hand Done out and let the totals check fail loudly
        return all(s.ended for s in self._streams)

    def drain_incoming(self, timeout: float) -> None:
        self.primary.drain_incoming(timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.channel.close()


def _unsent_bytes(channel: Channel) -> int:
    """Bytes the kernel has not had acknowledged yet on a TCP socket (0 where unknown)."""
    return channel.unacknowledged if isinstance(channel, TcpChannel) else 0

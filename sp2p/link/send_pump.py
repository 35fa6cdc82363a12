"""The sender's transfer pipeline (client.md §3.3 with W3, W4, W9 fixed).

    reader (this thread) -> [compress + seal on worker threads] -> writer thread -> channel
                         -> (no compression, or a stored frame: the writer seals)

With compression the effort per chunk adapts (sp2p/proto/adapt.py): the writer reports how
long it waited for each frame's compression, how long the write took and what the transport
still holds unsent after it.
    peer reader thread   <- frames from the receiver (Heartbeat, Error, Cancel, Complete)

Sequence numbers are reserved in order when a frame is queued, frames are written
strictly in that order, and the receiver is read concurrently so its Error or
Cancel stops us at once instead of after the whole file went out.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, Protocol

from sp2p.errors import ConnectionLost, Sp2pError, TransferError
from sp2p.link.failure import FirstFailure
from sp2p.link.framed import FrameLink, Sealed, Slot
from sp2p.link.memory import keep_freed_memory
from sp2p.log import get_logger
from sp2p.net.channel import ChannelClosed
from sp2p.proto.adapt import LevelController, start_level
from sp2p.proto.compression import STORED, ChunkCompressor, chunk_limit, stored_frame
from sp2p.proto.constants import MAX_CHUNK_SIZE, CancelReason, MsgType
from sp2p.proto.liveness import stall_error
from sp2p.proto.messages import Totals, cancel_body
from sp2p.proto.transfer import SenderMachine, SenderState

log = get_logger(__name__)

PIPELINE_DEPTH = 16
#: how long a broken write waits for the receiver's Error frame to be read
PEER_REASON_WAIT = 1.0


class ChunkSource(Protocol):
    def read_chunk(self, size: int = MAX_CHUNK_SIZE) -> bytes | None:
        """Up to `size` bytes: full chunks except at the end or when a stream stalls.

        b"" at EOF; None when a stream has had nothing new for a while (lets us check for aborts).
        """
        ...


ProgressFn = Callable[[int], None]


class _ToSeal(NamedTuple):
    """A frame the writer thread seals itself, in order, just before writing it."""

    slot: Slot
    kind: int
    body: bytes


class SendPipeline:
    def __init__(
        self,
        fc: FrameLink,
        machine: SenderMachine,
        *,
        level: int,
        progress: ProgressFn = lambda n: None,
        workers: int = 2,
    ) -> None:
        keep_freed_memory()
        self.fc = fc
        self.machine = machine
        machine.trace = log.debug  # the core never logs by itself
        self.level = level
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sp2p-seal")
        self._local = threading.local()
        #: (frame work, plaintext length for progress, zstd setting it was made at or None)
        self._queue: queue.Queue[tuple[Future[Sealed] | _ToSeal, int, int | None] | None] = queue.Queue(
            PIPELINE_DEPTH
        )
        self._submit_lock = threading.Lock()
        self._failures = FirstFailure()
        self._abort = threading.Event()
        self._complete = threading.Event()
        self._peer_done = threading.Event()
        self._fin_ack: tuple[MsgType, bytes] | None = None
        self._plain_sent = 0
        #: the zstd effort per chunk (sp2p/proto/adapt.py), set by run() when compressing
        self._levels: LevelController | None = None
        self._levels_lock = threading.Lock()
        self._writing = False
        #: failures the flow heals by reconnecting (protocol-extensions §2): the peer is not told
        self.heals: Callable[[BaseException], bool] = lambda exc: False

    # -- frame queueing --------------------------------------------------------------------
    def _compressor(self) -> ChunkCompressor:
        comp: ChunkCompressor | None = getattr(self._local, "comp", None)
        if comp is None:
            comp = self._local.comp = ChunkCompressor(self.level)
        return comp

    def _seal(self, slot: Slot, kind: int, body: bytes, level: int) -> Sealed:
        packed = self._compressor().compress_at(body, level)
        with self._levels_lock:
            if self._levels is not None:
                self._levels.on_compressed(level, len(body), len(packed))
        return self.fc.seal(slot, kind, packed)

    def _submit(self, kind: int, body: bytes, *, compress: bool = False, plain_len: int = 0) -> None:
        with self._submit_lock:
            slot = self.fc.reserve(kind)
            level: int | None = None
            if compress and self._levels is not None:
                with self._levels_lock:
                    level = self._levels.next_level()
            # Only compression is worth a worker: sealing alone (and a stored frame, which is
            # one copy) is cheaper than the hand-off.
            item: Future[Sealed] | _ToSeal
            if level is None:
                item = _ToSeal(slot, kind, body)
            elif level == STORED:
                item = _ToSeal(slot, kind, stored_frame(body))
            else:
                item = self._pool.submit(self._seal, slot, kind, body, level)
            while True:
                if self._abort.is_set():
                    if isinstance(item, Future):
                        item.cancel()
                    raise self._stop_error()
                try:
                    self._queue.put((item, plain_len, level), timeout=0.5)
                    return
                except queue.Full:
                    continue

    def _submit_heartbeat_if_idle(self) -> None:
        if self._queue.empty() and self.fc.liveness.heartbeat_due(time.monotonic()):
            with contextlib.suppress(Sp2pError):
                self._submit(MsgType.HEARTBEAT, b"")

    # -- threads ---------------------------------------------------------------------------
    def _writer(self) -> None:
        last = time.perf_counter()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                work, plain_len, level = item
                self._writing = True
                began = time.perf_counter()
                sealed = work.result() if isinstance(work, Future) else self.fc.seal(*work)
                ready = time.perf_counter()
                self.fc.send_sealed(sealed)
                self._writing = False
                if level is not None:
                    done = time.perf_counter()
                    self._note_written(level, plain_len, ready - began if isinstance(work, Future) else 0.0,
                                       done - ready, done - last, self.fc.backlog(), len(sealed.wire))
                    last = done
                if plain_len:
                    self.fc.liveness.on_taken(time.monotonic(), plain_len)
                    self._plain_sent += plain_len
                    self.progress(self._plain_sent)
        except ChannelClosed as exc:
            # a receiver that failed sends Error, then closes: let its reason win over ours
            self._peer_done.wait(PEER_REASON_WAIT)
            self._fail(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._fail(exc)

    def _note_written(
        self, level: int, raw_len: int, waited: float, writing: float, elapsed: float, backlog: int, wire: int
    ) -> None:
        with self._levels_lock:
            if self._levels is not None:
                before = self._levels.current
                self._levels.on_written(level, raw_len, waited, writing, elapsed, backlog, wire)
                if self._levels.current != before:
                    log.debug("compression: zstd setting %d -> %d", before, self._levels.current)

    def _peer_reader(self) -> None:
        try:
            self._read_peer()
        finally:
            self._peer_done.set()

    def _read_peer(self) -> None:
        fc = self.fc
        try:
            while not self._complete.is_set():
                try:
                    frame = fc.recv_frame(timeout=1.0)
                except TimeoutError:
                    if self._abort.is_set():
                        return
                    self._watch_peer()
                    self._submit_heartbeat_if_idle()
                    continue
                if frame is None:
                    raise ConnectionLost("the receiver disconnected before confirming the transfer")
                with self._failures.step():
                    fin = self.machine.on_frame(frame)
                if fin is not None:
                    self._fin_ack = fin
                    self._complete.set()
                else:
                    self._watch_peer()  # a stream of heartbeats must not starve the check
                    self._submit_heartbeat_if_idle()  # nor leave us no quiet moment for ours
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._fail(exc)

    def _watch_peer(self) -> None:
        now = time.monotonic()
        live = self.fc.liveness
        if self.machine.state is SenderState.SENDING and self._queue.empty() and not self._writing:
            live.excuse(now)  # our source is slow: the receiver has nothing to do
        stall = live.check(now)
        if stall is not None:
            raise stall_error(stall, "receiver", live)

    def _fail(self, exc: BaseException) -> None:
        self._failures.record(exc)
        self._abort.set()
        self._complete.set()

    def _stop_error(self) -> BaseException:
        exc = self._failures.cause
        if isinstance(exc, ChannelClosed):
            return ConnectionLost("the connection to the receiver was lost")
        return exc if exc is not None else TransferError("transfer aborted")

    # -- main ------------------------------------------------------------------------------
    def run(self, source: ChunkSource, *, compress: bool) -> Totals:
        if compress:
            # a far link starts at the most effort allowed: stored frames would spend its slow start
            rtt = self.fc.round_trip()
            start = start_level(self.level, rtt)
            self._levels = LevelController(self.level, start_level=start, same_host=self.fc.same_host())
            log.debug("compression: start at zstd setting %d (-compress %d; round trip %s)",
                      self._levels.current, start, "unknown" if rtt is None else f"{rtt * 1000:.1f} ms")
        writer = threading.Thread(target=self._writer, name="sp2p-writer", daemon=True)
        reader = threading.Thread(target=self._peer_reader, name="sp2p-peer-reader", daemon=True)
        writer.start()
        reader.start()
        try:
            if self.machine.state is SenderState.IDLE:  # else the resume handshake sent Metadata
                with self._failures.step():
                    kind, body = self.machine.start()
                self._submit(kind, body)
            size = chunk_limit(self.fc.message_limit, compressed=compress)  # a frame per message
            while True:
                chunk = source.read_chunk(size)
                if chunk:
                    assert len(chunk) <= MAX_CHUNK_SIZE
                    # recorded even when we stop now: a healing stream re-sends it from the window
                    with self._failures.step():
                        self.machine.record_chunk(chunk)
                if self._abort.is_set():  # the receiver stopped us (or the link broke)
                    raise self._stop_error()
                if chunk is None:
                    continue
                if not chunk:
                    break
                self._submit(MsgType.DATA, chunk, compress=compress, plain_len=len(chunk))
            if self._abort.is_set():
                raise self._stop_error()
            with self._failures.step():
                kind, body = self.machine.finish()
            self._submit(kind, body)
            self._complete.wait()
            if self._failures.cause is not None or self._fin_ack is None:
                raise self._stop_error()
            self._submit(*self._fin_ack)
            self._queue.put(None)
            writer.join()
            if self._failures.cause is not None:
                raise self._stop_error()
            return self.machine.digest.totals()
        except KeyboardInterrupt:
            self.cancel(CancelReason.USER_ABORT)
            raise
        except BaseException as exc:
            self._fail(exc)
            first = self._stop_error()  # first failure wins: later ones are its consequences
            if self.heals(first):
                self.machine.fail()  # a Cancel would stop a peer that is about to reconnect
            else:
                self.cancel(CancelReason.INTERNAL_ERROR)
            if first is exc:
                raise
            raise first from None
        finally:
            self._abort.set()
            self._complete.set()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def cancel(self, reason: CancelReason) -> None:
        """Best-effort Cancel; the receiver accepts its forward sequence gap."""
        self.machine.fail()
        self.fc.try_send_frame(MsgType.CANCEL, cancel_body(reason))

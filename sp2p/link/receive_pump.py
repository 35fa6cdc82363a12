"""The receiver's transfer pipeline (client.md §3.4 with W3, W10 fixed).

    this thread: channel -> decrypt -> machine -> bounded zstd -> bounded queue
    worker:      queue -> SHA-256 accounting -> sink.write
    heartbeat:   a Heartbeat every 5 s of silence, so a paused consumer does not look dead

The output is committed (renamed into place) after the hash verified and before
Complete is sent: a failure to commit reaches the sender as an Error, never as success.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sp2p.errors import (
    LocalIOError,
    LocalProtocolError,
    PeerCancelled,
    RemoteError,
    RemoteProtocolError,
    SecurityError,
    Sp2pError,
)
from sp2p.link.failure import FirstFailure
from sp2p.link.framed import FrameLink
from sp2p.link.memory import SMALL_TRANSFER, keep_freed_memory
from sp2p.log import get_logger
from sp2p.proto.compression import ChunkDecompressor
from sp2p.proto.constants import CancelReason, MsgType
from sp2p.proto.liveness import stall_error
from sp2p.proto.messages import Metadata, Totals, cancel_body, error_body
from sp2p.proto.transfer import (
    DataReceived,
    DoneReceived,
    HealAccepted,
    MetadataReceived,
    ReceiverMachine,
    ReceiverState,
    TransferFinished,
)

log = get_logger(__name__)

QUEUE_DEPTH = 32
FIN_ACK_WAIT = 10.0
#: after a failure, how long we keep reading so the sender gets our Error before the close
LINGER = 2.0


class Sink(Protocol):
    """Where received plaintext goes: a temp file, a streaming extractor, or stdout."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the verified output final (rename into place)."""
        ...

    def abort(self) -> None:
        """Remove everything written so far; idempotent."""
        ...


SinkFactory = Callable[[Metadata], Sink]
#: the receiver's resume handshake after Metadata (flow/resume.py); returns the offset Data starts at
ResumeHandshake = Callable[[FrameLink, ReceiverMachine, Sink, Callable[[], object]], int]
ProgressFn = Callable[[int], None]


class ReceivePipeline:
    def __init__(
        self, fc: FrameLink, *, progress: ProgressFn = lambda n: None, resume: bool = False,
        machine: ReceiverMachine | None = None,
    ) -> None:
        self.fc = fc
        #: a reconnected link brings the machine that continues the broken one (§2.6)
        self.machine = machine if machine is not None else ReceiverMachine(resume=resume, trace=log.debug)
        self.machine.trace = log.debug
        #: failures the flow heals by reconnecting (protocol-extensions §2): the peer is not told
        self.heals: Callable[[BaseException], bool] = lambda exc: False
        #: set by the flow when resume was negotiated (docs/protocol-extensions.md §1)
        self.resume_handshake: ResumeHandshake | None = None
        self._worker_thread: threading.Thread | None = None
        self.progress = progress
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_DEPTH)
        self._worker_error: BaseException | None = None
        self._failures = FirstFailure()
        self._stop = threading.Event()
        self.sink: Sink | None = None

    def _worker(self) -> None:
        received = 0
        assert self.sink is not None
        try:
            while (body := self._queue.get()) is not None:
                with self._failures.step():
                    self.machine.record_plaintext(body)
                self.sink.write(body)
                received += len(body)
                self.progress(received)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._failures.record(exc)
            self._worker_error = exc
            self._stop.set()
            # drain so the main thread never blocks on a full queue
            while True:
                try:
                    if self._queue.get_nowait() is None:
                        break
                except queue.Empty:
                    time.sleep(0.01)
                    if self._stop.is_set() and self._queue.empty():
                        break

    def _heartbeats(self) -> None:
        while not self._stop.wait(0.5):
            if self.fc.liveness.heartbeat_due(time.monotonic()):
                self.fc.try_send_frame(MsgType.HEARTBEAT, b"")

    def _next_frame(self) -> object:
        while True:
            if self._stop.is_set() and self._worker_error is not None:
                raise self._worker_error
            try:
                frame = self.fc.recv_frame(timeout=1.0)
            except TimeoutError:
                self._watch_peer()
                continue
            with self._failures.step():
                event = self.machine.on_eof() if frame is None else self.machine.on_frame(frame)
            if event is not None:  # on_eof always ends the transfer one way or the other
                return event
            self._watch_peer()  # a stream of heartbeats must not starve the check

    def _watch_peer(self) -> None:
        live = self.fc.liveness
        stall = live.check(time.monotonic())
        if stall is not None:
            raise stall_error(stall, "sender", live)

    def _enqueue(self, body: bytes | None) -> None:
        while True:
            if self._worker_error is not None:
                raise self._worker_error
            try:
                self._queue.put(body, timeout=0.5)
                return
            except queue.Full:
                self.fc.liveness.excuse(time.monotonic())  # our consumer is slow, not the sender

    def run(self, make_sink: SinkFactory, *, on_metadata: Callable[[Metadata], None]) -> Totals:
        heart = threading.Thread(target=self._heartbeats, name="sp2p-heartbeat", daemon=True)
        worker: threading.Thread | None = None
        try:
            heart.start()  # also while the user answers a question: we are alive meanwhile
            event = self._next_frame()
            if not isinstance(event, MetadataReceived):
                raise RemoteProtocolError("expected metadata")
            meta = event.metadata
            if meta.is_folder or meta.stream_mode or meta.size > SMALL_TRANSFER:
                keep_freed_memory()
            on_metadata(meta)
            self.sink = make_sink(meta)
            self.fc.liveness.excuse(time.monotonic())  # a question to the user is not the sender's stall
            if self.machine.state is ReceiverState.AWAIT_SOURCE:  # docs/protocol-extensions.md §1
                if self.resume_handshake is None:
                    raise LocalProtocolError("resume negotiated without a resume handshake")
                self.resume_handshake(self.fc, self.machine, self.sink, self._next_frame)
            elif self.machine.state is ReceiverState.POSITIONING:  # a stream continues, §2.6
                self.fc.send_frame(*self.machine.position())
                if not isinstance(self._next_frame(), HealAccepted):
                    raise RemoteProtocolError("expected the heal answer")
            # decompressing here, not in the worker, splits the work more evenly (SHA-256 is the
            # heavier half and releases the GIL), so the two threads can run on two cores
            decompressor = ChunkDecompressor() if meta.compression == "zstd" else None
            worker = threading.Thread(target=self._worker, name="sp2p-sink", daemon=True)
            self._worker_thread = worker
            worker.start()
            while True:
                event = self._next_frame()
                if isinstance(event, DataReceived):
                    self._enqueue(decompressor.decompress(event.body) if decompressor else event.body)
                elif isinstance(event, DoneReceived):
                    break
            self._enqueue(None)
            worker.join()
            if self._worker_error is not None:
                raise self._worker_error
            kind, body = self.machine.complete()
            self.sink.commit()
            # the output is verified and in place: a link that breaks now cannot undo that
            if not self.fc.try_send_frame(kind, body):
                log.debug("Complete could not be sent; the file is saved all the same")
            self._await_fin_ack()
            return self.machine.digest.totals()
        except KeyboardInterrupt:
            self._fail(CancelReason.USER_ABORT, None)
            raise
        except BaseException as exc:
            first = self._failures.record(exc)  # first failure wins: later ones are its consequences
            if self.heals(first):
                self._stop.set()  # no Error, no Cancel, no lingering: the reconnect comes next
                self.machine.fail()
            else:
                self._fail(CancelReason.INTERNAL_ERROR, first)
            if first is exc:
                raise
            raise first from None
        finally:
            self._stop.set()

    def settle(self) -> ReceiverMachine:
        """After a failure: let the writer finish what it holds (every byte it has is verified
        in order), so the machine's digest is exactly what was written; heal continues there."""
        worker = self._worker_thread
        if worker is not None and worker.is_alive() and self._worker_error is None:
            self._queue.put(None)
            worker.join()
        return self.machine

    def _await_fin_ack(self) -> None:
        deadline = time.monotonic() + FIN_ACK_WAIT
        while time.monotonic() < deadline:
            try:
                frame = self.fc.recv_frame(timeout=max(0.0, deadline - time.monotonic()))
            except (TimeoutError, Sp2pError):
                return  # the transfer is verified and committed; a lost FinAck changes nothing
            if frame is None or isinstance(self.machine.on_frame(frame), TransferFinished):
                return

    def _fail(self, reason: CancelReason, exc: BaseException | None) -> None:
        self._stop.set()
        self.machine.fail()
        if self.sink is not None:
            self.sink.abort()
        message = _error_for_sender(exc)
        if message is not None:
            self.fc.try_send_frame(MsgType.ERROR, error_body(message))
        self.fc.try_send_frame(MsgType.CANCEL, cancel_body(reason))
        self._drain_until_peer_closes()

    def _drain_until_peer_closes(self) -> None:
        """Keep reading briefly: closing with unread data would send a TCP reset, which can
        destroy our Error frame in the sender's buffers before the sender reads it."""
        self.fc.drain_incoming(LINGER)


def _error_for_sender(exc: BaseException | None) -> str | None:
    """What the sender should read about our failure (as Go receivers say it), if anything."""
    if exc is None or isinstance(exc, PeerCancelled | RemoteError | SecurityError):
        return None  # the sender stopped itself, or the stream is not trustworthy any more
    if isinstance(exc, LocalIOError):
        return f"write failed: {exc}"
    if isinstance(exc, Sp2pError):
        return str(exc)
    return "receiver failed unexpectedly"

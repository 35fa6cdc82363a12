"""Resume on re-run, the I/O half (docs/protocol-extensions.md §1; rules in sp2p.proto).

    sender:   Metadata + ResumeSource -> wait for ResumeOffer -> hash our prefix -> ResumeAccept
    receiver: ResumeSource -> find the partial, hash it -> ResumeOffer -> ResumeAccept -> append

Both sides send Heartbeats while they hash a long prefix, so the peer never thinks them gone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sp2p.errors import (
    ConnectionLost,
    LocalIOError,
    LocalProtocolError,
    RemoteProtocolError,
    Sp2pError,
)
from sp2p.fs.incoming import IncomingFile, check_free_space
from sp2p.fs.partials import Partial
from sp2p.link.framed import FrameLink
from sp2p.link.sources import FullChunkSource
from sp2p.proto.constants import CancelReason, MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.liveness import stall_error
from sp2p.proto.messages import Metadata, cancel_body
from sp2p.proto.resume import EDGE_BYTES, SourceIdentity
from sp2p.proto.sha import sha256_bulk
from sp2p.proto.transfer import ReceiverMachine, ResumeAccepted, SenderMachine, SourceReceived
from sp2p.term.ui import human_size

_BLOCK = 1024 * 1024


def resuming_line(offset: int, size: int, where: str) -> str:
    """The line either side prints when a transfer resumes (`where`: "here" or "there")."""
    return f"Resuming at {offset * 100 // max(size, 1)} % ({human_size(offset)} already {where})"


def watch_receiver(fc: FrameLink) -> None:
    stall = fc.liveness.check(time.monotonic())
    if stall is not None:
        raise stall_error(stall, "receiver", fc.liveness)


def heartbeat_tick(fc: FrameLink) -> Callable[[], None]:
    def tick() -> None:
        if fc.liveness.heartbeat_due(time.monotonic()):
            fc.try_send_frame(MsgType.HEARTBEAT, b"")

    return tick


T = TypeVar("T")


def wait_answer(fc: FrameLink, answer: Callable[[Frame], T | None], tick: Callable[[], None], lost: str) -> T:
    """The sender waiting for the receiver's answer (ResumeOffer, HealOffer): `answer` turns a
    frame into it, or None for a frame to skip (a heartbeat). Raises ConnectionLost(`lost`) at EOF."""
    while True:
        try:
            frame = fc.recv_frame(timeout=1.0)
        except TimeoutError:
            tick()
            watch_receiver(fc)
            continue
        if frame is None:
            raise ConnectionLost(lost)
        result = answer(frame)
        if result is not None:
            return result
        tick()  # a receiver heartbeating every second never leaves us a quiet moment to do it
        watch_receiver(fc)  # the one liveness rule: heartbeats alone cannot hold us here either


# ----------------------------------------------------------------------------------- sender


def source_identity(path: str) -> SourceIdentity:
    """Size, mtime and the hashes of the first and last MiB of the file at `path`."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(EDGE_BYTES)
            f.seek(max(0, st.st_size - EDGE_BYTES))
            tail = f.read(EDGE_BYTES)
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return SourceIdentity.from_edges(st.st_size, st.st_mtime_ns, head, tail)


def _hash_file_prefix(path: str, length: int, tick: Callable[[], None]) -> Any:
    """SHA-256 over the first `length` bytes, or None when the file has fewer."""
    sha = sha256_bulk()
    try:
        with open(path, "rb", buffering=0) as f:
            left = length
            while left:
                block = f.read(min(_BLOCK, left))
                if not block:
                    return None
                sha.update(block)
                left -= len(block)
                tick()
    except OSError:
        return None
    return sha


def send_resume(fc: FrameLink, machine: SenderMachine, path: str) -> int:
    """Run the sender's half of the handshake; returns the offset Data starts at.

    On failure the receiver hears Cancel, as from the send pipeline.
    """
    try:
        return _send_resume(fc, machine, path)
    except KeyboardInterrupt:
        cancel_handshake(fc, machine, CancelReason.USER_ABORT)
        raise
    except Sp2pError:
        cancel_handshake(fc, machine)
        raise


def cancel_handshake(
    fc: FrameLink, machine: SenderMachine, reason: CancelReason = CancelReason.INTERNAL_ERROR
) -> None:
    """A sender's handshake failed: the machine fails and the receiver hears Cancel, as from
    the send pipeline."""
    machine.fail()
    fc.try_send_frame(MsgType.CANCEL, cancel_body(reason))


def _send_resume(fc: FrameLink, machine: SenderMachine, path: str) -> int:
    source = source_identity(path)
    if source.size != machine.metadata.size:
        raise LocalIOError(f"{path} changed size while it was being sent")
    for kind, body in machine.start_resumable(source):
        fc.send_frame(kind, body)
    tick = heartbeat_tick(fc)
    offer = wait_answer(fc, machine.on_offer, tick, "the receiver disconnected before the transfer started")
    prefix = _hash_file_prefix(path, offer.offset, tick) if offer.offset else None
    offset, (kind, body) = machine.accept(offer, prefix)
    fc.send_frame(kind, body)
    return offset


def open_rest(path: str, offset: int, size: int) -> tuple[FullChunkSource, BinaryIO]:
    """The file from `offset` on, in full chunks; the caller closes the file."""
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
        f.seek(offset)
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return FullChunkSource(f, what=path, expected_size=size - offset), f


# --------------------------------------------------------------------------------- receiver

#: told (offset, size) once the start is agreed, to show "resuming at …"
StartFn = Callable[[int, int], None]


class ResumableFileSink:
    """A single file received into a resumable partial (kept on failure, renamed on success)."""

    def __init__(self, outdir: Path, meta: Metadata, on_start: StartFn = lambda o, s: None) -> None:
        self._outdir = outdir
        self._meta = meta
        self._on_start = on_start
        self._partial: Partial | None = None
        self._file: IncomingFile | None = None
        self.offset = 0
        self.saved: list[Path] = []

    # -- the handshake ------------------------------------------------------------------------
    def find(self, source: SourceIdentity, tick: Callable[[], None]) -> tuple[int, Any]:
        """What we hold for `source`: (bytes, SHA-256 over them or None)."""
        self._partial = Partial(self._outdir, self._meta.name, self._meta.size, source)
        held = self._partial.held
        return held, (self._partial.prefix_hash(held, tick) if held else None)

    def start(self, offset: int) -> None:
        if self._partial is None:
            raise LocalProtocolError("resumable sink started before find()")
        check_free_space(self._outdir, self._meta.size - offset)
        self._file = self._partial.begin(offset)
        self.offset = offset
        self._on_start(offset, self._meta.size)

    @property
    def kept(self) -> int:
        """Bytes a failed transfer leaves in the partial for a re-run."""
        return self._file.written if self._file is not None else 0

    # -- the Sink protocol --------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._file is None:
            raise LocalProtocolError("data before the resume handshake")
        self._file.write(data)

    def commit(self) -> None:
        if self._file is None or self._partial is None:
            raise LocalProtocolError("commit before the resume handshake")
        self.saved = [self._file.commit(self._meta.name)]
        self._partial.forget_record()
        self._partial.close()

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
        if self._partial is not None:
            if self.kept == 0:
                self._partial.discard()
            self._partial.close()


def receive_resume(
    fc: FrameLink, machine: ReceiverMachine, sink: object, next_event: Callable[[], object]
) -> int:
    """The receiver's half, right after Metadata; returns the offset Data starts at."""
    if not isinstance(sink, ResumableFileSink):
        raise LocalProtocolError("resume negotiated without a resumable sink")
    event = next_event()
    if not isinstance(event, SourceReceived):
        raise RemoteProtocolError("expected the resume source after the metadata")
    held, prefix = sink.find(event.source, heartbeat_tick(fc))
    kind, body = machine.offer(held, prefix)
    fc.send_frame(kind, body)
    event = next_event()
    if not isinstance(event, ResumeAccepted):
        raise RemoteProtocolError("expected the resume answer")
    sink.start(event.offset)
    return event.offset


def close_quietly(f: BinaryIO | None) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()

"""Sender and receiver transfer state machines (client.md §3.3–3.5, §3.12).

Everything that affects the transfer state lives here. The machines see decrypted
frames and return what to send; they never touch sockets, threads or clocks.

    sender:   IDLE -start-> SENDING -finish-> AWAIT_COMPLETE -Complete-> FINISHED
    receiver: AWAIT_METADATA -Metadata-> RECEIVING -Done-> VERIFYING -complete()-> AWAIT_FIN_ACK
              -any frame or EOF-> FINISHED
    both:     Cancel or Error from the peer, or a failed check -> FAILED

    resume (docs/protocol-extensions.md §1.5), negotiated and a single file:
    sender:   IDLE -start_resumable-> AWAIT_OFFER -ResumeOffer, accept()-> SENDING
    receiver: AWAIT_METADATA -Metadata-> AWAIT_SOURCE -ResumeSource-> OFFERING
              -offer()-> AWAIT_ACCEPT -ResumeAccept-> RECEIVING

    heal of a folder or stream on a reconnected link (§2.6), a machine `continuing` the last:
    sender:   IDLE -start_continuing-> AWAIT_POSITION -HealOffer, on_position()-> SENDING
    receiver: AWAIT_METADATA -the same Metadata-> POSITIONING -position()-> AWAIT_HEAL_ACCEPT
              -HealAccept-> RECEIVING

Heartbeats are ignored in every state (browsers send them anywhere).

Length (~490 lines): the two machines mirror each other frame for frame, so they read side by
side; what both count over the plaintext is sp2p.proto.digest, the liveness rule both
pipelines share is sp2p.proto.liveness.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, auto
from typing import Final, TypeVar

from sp2p.errors import (
    LocalProtocolError,
    PeerCancelled,
    RemoteError,
    RemoteProtocolError,
    StreamTruncated,
    VerificationError,
)
from sp2p.proto.constants import MAX_CONTROL_SIZE, CancelReason, MsgType
from sp2p.proto.digest import StreamDigest, totals_mismatch
from sp2p.proto.frames import Frame
from sp2p.proto.heal import (
    Continuation,
    Hasher,
    HealOffer,
    ReplayWindow,
    continuation,
    heal_accept_body,
    parse_heal_accept,
)
from sp2p.proto.messages import Metadata, Totals, parse_cancel_body, parse_error_body
from sp2p.proto.resume import ResumeOffer, SourceIdentity, accept_body, applies, parse_accept
from sp2p.record import record

#: where a machine reports its transitions ("sender SENDING -> AWAIT_COMPLETE"); the core never
#: logs by itself (it stays sans-IO), the shell that drives it hands in its logger
Trace = Callable[[str], None]


def no_trace(text: str) -> None:
    pass


_T = TypeVar("_T")


def _peer_stop(frame: Frame, peer: str) -> Exception:
    if frame.msg_type == MsgType.CANCEL:
        reason = parse_cancel_body(frame.body)
        why = "cancelled the transfer" if reason == CancelReason.USER_ABORT else "stopped after an error"
        return PeerCancelled(f"the {peer} {why}", reason=reason)
    return RemoteError(f"{peer} error: {parse_error_body(frame.body)}")


def _unexpected(frame: Frame, state: Enum) -> RemoteProtocolError:
    return RemoteProtocolError(f"unexpected message type 0x{frame.msg_type:02x} in state {state.name}")


def _check_control_size(frame: Frame) -> None:
    if frame.msg_type != MsgType.DATA and len(frame.body) > MAX_CONTROL_SIZE:
        raise RemoteProtocolError(f"control frame 0x{frame.msg_type:02x} too large")


class SenderState(Enum):
    IDLE = auto()
    AWAIT_OFFER = auto()  #: resume: Metadata + ResumeSource sent, waiting for ResumeOffer
    AWAIT_POSITION = auto()  #: heal of a stream: Metadata sent again, waiting for HealOffer
    SENDING = auto()
    AWAIT_COMPLETE = auto()
    FINISHED = auto()
    FAILED = auto()


_SENDER_TRANSITIONS: Final[dict[tuple[SenderState, str], SenderState]] = {
    (SenderState.IDLE, "start"): SenderState.SENDING,
    (SenderState.IDLE, "start-resumable"): SenderState.AWAIT_OFFER,
    (SenderState.AWAIT_OFFER, "accept"): SenderState.SENDING,
    (SenderState.IDLE, "start-continuing"): SenderState.AWAIT_POSITION,
    (SenderState.AWAIT_POSITION, "continue"): SenderState.SENDING,
    (SenderState.SENDING, "finish"): SenderState.AWAIT_COMPLETE,
    (SenderState.AWAIT_COMPLETE, "complete"): SenderState.FINISHED,
}


class SenderMachine:
    def __init__(
        self, metadata: Metadata, *, trace: Trace = no_trace, window: ReplayWindow | None = None
    ) -> None:
        self.metadata = metadata
        self.trace = trace
        self.state = SenderState.IDLE
        self.digest = StreamDigest()
        #: heal of a stream (§2.6): the recent chunks, to send again after a reconnect
        self.window = window

    @classmethod
    def continuing(cls, previous: SenderMachine) -> SenderMachine:
        """The machine for a reconnected link: same stream, digest and window as `previous`."""
        if previous.window is None:
            raise LocalProtocolError("sender: a stream continues only with a replay window")
        machine = cls(previous.metadata, trace=previous.trace, window=previous.window)
        machine.digest = previous.digest
        return machine

    def start_continuing(self) -> tuple[MsgType, bytes]:
        """Heal of a stream: Metadata again, then wait for the receiver's HealOffer."""
        if self.window is None:
            raise LocalProtocolError("sender: a stream continues only with a replay window")
        self._set_state("start-continuing")
        return MsgType.METADATA, self.metadata.to_json()

    def on_position(self, frame: Frame) -> tuple[list[bytes], tuple[MsgType, bytes]] | None:
        """A frame while waiting for HealOffer: None for a Heartbeat, else the chunks to send
        again (before reading on) and the HealAccept frame. OutOfWindow when the offset is older
        than the window: the caller tells the receiver with an Error frame."""
        return self._from_receiver(frame, self._position)

    def _position(self, frame: Frame) -> tuple[list[bytes], tuple[MsgType, bytes]]:
        waiting = self.state is SenderState.AWAIT_POSITION and self.window is not None
        if frame.msg_type != MsgType.HEAL_OFFER or not waiting or self.window is None:
            raise _unexpected(frame, self.state)
        offer = HealOffer.from_json(frame.body)
        state, replay = self.window.rewind(offer, self.digest.snapshot())
        self.digest.restore(state)
        self._set_state("continue")
        return replay, (MsgType.HEAL_ACCEPT, heal_accept_body(offer.offset))

    def _from_receiver(self, frame: Frame, handle: Callable[[Frame], _T]) -> _T | None:
        """What every frame from the receiver goes through: the control-size cap, a Heartbeat
        (nothing to do: None), Cancel or Error (the receiver stopped); any failure, `handle`'s
        included, leaves the machine FAILED."""
        _check_control_size(frame)
        if frame.msg_type == MsgType.HEARTBEAT:
            return None
        try:
            if frame.msg_type in (MsgType.CANCEL, MsgType.ERROR):
                raise _peer_stop(frame, "receiver")
            return handle(frame)
        except Exception:
            self.fail()
            raise

    def _set_state(self, event: str) -> None:
        new = _SENDER_TRANSITIONS.get((self.state, event))
        if new is None:
            raise LocalProtocolError(f"sender: {event} is not allowed in state {self.state.name}")
        self.trace(f"sender {self.state.name} -> {new.name}")
        self.state = new

    def fail(self) -> None:
        self.state = SenderState.FAILED

    def start(self) -> tuple[MsgType, bytes]:
        self._set_state("start")
        return MsgType.METADATA, self.metadata.to_json()

    def start_resumable(self, source: SourceIdentity) -> list[tuple[MsgType, bytes]]:
        """Resume negotiated: Metadata, then ResumeSource; wait for the offer (`on_offer`)."""
        if not applies(self.metadata) or source.size != self.metadata.size:
            raise LocalProtocolError("sender: resume source does not match the metadata")
        self._set_state("start-resumable")
        return [(MsgType.METADATA, self.metadata.to_json()), (MsgType.RESUME_SOURCE, source.to_json())]

    def on_offer(self, frame: Frame) -> ResumeOffer | None:
        """A frame while waiting for the receiver's ResumeOffer; None for a Heartbeat."""
        return self._from_receiver(frame, self._offer)

    def _offer(self, frame: Frame) -> ResumeOffer:
        if frame.msg_type != MsgType.RESUME_OFFER or self.state is not SenderState.AWAIT_OFFER:
            raise _unexpected(frame, self.state)
        offer = ResumeOffer.from_json(frame.body)
        if offer.offset > self.metadata.size:
            raise RemoteProtocolError(
                f"resume offer at byte {offer.offset} is past the announced size {self.metadata.size}"
            )
        return offer

    def accept(self, offer: ResumeOffer, our_prefix: Hasher | None) -> tuple[int, tuple[MsgType, bytes]]:
        """Decide the start offset: the offer's when our prefix hash equals it, else 0.

        Args:
            offer: from `on_offer`.
            our_prefix: SHA-256 over the first ``offer.offset`` bytes of our file, or None
                when they could not be read.

        Returns:
            (offset, the ResumeAccept frame to send); Data then starts at offset.
        """
        offset = 0
        if offer.offset and our_prefix is not None and our_prefix.hexdigest() == offer.prefix_sha256:
            offset = offer.offset
            self.digest.continue_from(our_prefix, offset)
        self._set_state("accept")
        return offset, (MsgType.RESUME_ACCEPT, accept_body(offset))

    def record_chunk(self, chunk: bytes) -> None:
        """Account one raw (uncompressed) chunk that is about to be sent."""
        if self.state is not SenderState.SENDING:
            raise LocalProtocolError("sender: data outside the SENDING state")
        if self.window is not None:
            self.window.push(self.digest.snapshot(), chunk)
        self.digest.update(chunk)

    def finish(self) -> tuple[MsgType, bytes]:
        self._set_state("finish")
        return MsgType.DONE, self.digest.totals().to_json()

    def on_frame(self, frame: Frame) -> tuple[MsgType, bytes] | None:
        """Handle a frame from the receiver; returns the FinAck to send once Complete verifies."""
        return self._from_receiver(frame, self._complete)

    def _complete(self, frame: Frame) -> tuple[MsgType, bytes]:
        if frame.msg_type == MsgType.COMPLETE and self.state is SenderState.AWAIT_COMPLETE:
            mismatch = totals_mismatch(self.digest.totals(), Totals.from_json(frame.body, "complete"))
            if mismatch is not None:
                raise mismatch
            self._set_state("complete")
            return MsgType.FIN_ACK, b""
        raise _unexpected(frame, self.state)  # built before fail(): it names the state we were in


class ReceiverState(Enum):
    AWAIT_METADATA = auto()
    AWAIT_SOURCE = auto()  #: resume: Metadata arrived, ResumeSource must follow
    OFFERING = auto()  #: resume: the flow looks up its partial and calls offer()
    AWAIT_ACCEPT = auto()  #: resume: ResumeOffer sent
    POSITIONING = auto()  #: heal of a stream: the same Metadata again; the flow calls position()
    AWAIT_HEAL_ACCEPT = auto()  #: heal of a stream: HealOffer sent
    RECEIVING = auto()
    VERIFYING = auto()
    AWAIT_FIN_ACK = auto()
    FINISHED = auto()
    FAILED = auto()


_RECEIVER_TRANSITIONS: Final[dict[tuple[ReceiverState, int | str], ReceiverState]] = {
    (ReceiverState.AWAIT_METADATA, MsgType.METADATA): ReceiverState.RECEIVING,
    (ReceiverState.AWAIT_METADATA, "metadata-resumable"): ReceiverState.AWAIT_SOURCE,
    (ReceiverState.AWAIT_SOURCE, MsgType.RESUME_SOURCE): ReceiverState.OFFERING,
    (ReceiverState.OFFERING, "offer"): ReceiverState.AWAIT_ACCEPT,
    (ReceiverState.AWAIT_ACCEPT, MsgType.RESUME_ACCEPT): ReceiverState.RECEIVING,
    (ReceiverState.AWAIT_METADATA, "metadata-continuing"): ReceiverState.POSITIONING,
    (ReceiverState.POSITIONING, "position"): ReceiverState.AWAIT_HEAL_ACCEPT,
    (ReceiverState.AWAIT_HEAL_ACCEPT, MsgType.HEAL_ACCEPT): ReceiverState.RECEIVING,
    (ReceiverState.RECEIVING, MsgType.DATA): ReceiverState.RECEIVING,
    (ReceiverState.RECEIVING, MsgType.DONE): ReceiverState.VERIFYING,
    (ReceiverState.VERIFYING, "complete"): ReceiverState.AWAIT_FIN_ACK,
    (ReceiverState.AWAIT_FIN_ACK, "end"): ReceiverState.FINISHED,
}


# The receiver's events: one small frozen record each, matched by type (the same shape as
# proto/tar.py's parser events, by design).


@record(frozen=True)
class MetadataReceived:
    metadata: Metadata


@record(frozen=True)
class DataReceived:
    body: bytes  #: as sent: a zstd frame when metadata.compression == "zstd"

    def __init__(self, body: bytes) -> None:  # one per chunk
        object.__setattr__(self, "body", body)


@record(frozen=True)
class DoneReceived:
    totals: Totals


@record(frozen=True)
class TransferFinished:
    pass


@record(frozen=True)
class SourceReceived:
    """Resume: the sender's ResumeSource; answer with `ReceiverMachine.offer`."""

    source: SourceIdentity


@record(frozen=True)
class ResumeAccepted:
    """Resume: Data starts at `offset` (the offered offset, or 0: start afresh)."""

    offset: int


@record(frozen=True)
class HealAccepted:
    """Heal of a stream: Data continues at `offset` (what we said we hold)."""

    offset: int


ReceiverEvent = (
    MetadataReceived | DataReceived | DoneReceived | TransferFinished | SourceReceived | ResumeAccepted
    | HealAccepted
)


class ReceiverMachine:
    def __init__(self, *, resume: bool = False, heal: int = 0, trace: Trace = no_trace) -> None:
        self.trace = trace
        #: both peers announced the resume extension
        self.resume = resume
        #: the heal version both speak, and whether this is a reconnected link (§2)
        self.heal = heal
        self.reconnected = False
        self._offered: tuple[int, Hasher | None] | None = None
        self.state = ReceiverState.AWAIT_METADATA
        self.metadata: Metadata | None = None
        self.done: Totals | None = None
        self.digest = StreamDigest()
        self.frames_received = 0
        #: exact byte budget: known for single files; None for streams and folders
        self.max_bytes: int | None = None
        #: the Metadata a reconnected sender must announce again
        self.continues: Metadata | None = None

    @classmethod
    def continuing(cls, previous: ReceiverMachine) -> ReceiverMachine:
        """The machine for a reconnected link after `previous` broke (call with its writer idle).

        A stream continues with `previous`'s digest; a file resumes through its partial (§1)
        with a fresh one; before Metadata there is nothing to continue yet.
        """
        machine = cls(resume=previous.resume, heal=previous.heal, trace=previous.trace)
        machine.reconnected = True
        meta = machine.continues = previous.metadata
        if meta is not None and machine._continuation(meta) is Continuation.STREAM:
            machine.digest = previous.digest
            machine.frames_received = previous.frames_received
        return machine

    def _continuation(self, meta: Metadata) -> Continuation:
        return continuation(self.heal, resumes=self.resume, meta=meta)

    def _set_state(self, event: int | str) -> None:
        new = _RECEIVER_TRANSITIONS.get((self.state, event))
        if new is None:
            raise LocalProtocolError(f"receiver: {event!r} is not allowed in state {self.state.name}")
        if new is not self.state:
            self.trace(f"receiver {self.state.name} -> {new.name}")
        self.state = new

    def fail(self) -> None:
        self.state = ReceiverState.FAILED

    def on_frame(self, frame: Frame) -> ReceiverEvent | None:
        try:
            return self._on_frame(frame)
        except Exception:
            self.fail()
            raise

    def _on_frame(self, frame: Frame) -> ReceiverEvent | None:
        _check_control_size(frame)
        kind = frame.msg_type
        if kind == MsgType.HEARTBEAT:
            return None
        if self.state is ReceiverState.AWAIT_FIN_ACK:
            self._set_state("end")  # FinAck, or any other frame, ends it (client.md §3.12)
            return TransferFinished()
        if kind in (MsgType.CANCEL, MsgType.ERROR):
            raise _peer_stop(frame, "sender")
        if (self.state, kind) not in _RECEIVER_TRANSITIONS:
            if self.state is ReceiverState.AWAIT_METADATA:
                raise RemoteProtocolError(f"expected metadata (0x01), got 0x{kind:02x}")
            raise _unexpected(frame, self.state)
        if kind == MsgType.METADATA:
            meta = Metadata.from_json(frame.body)
            if self.continues is not None and meta != self.continues:
                raise RemoteProtocolError("the sender announced another transfer after reconnecting")
            if self.reconnected and self._continuation(meta) is Continuation.STREAM:
                self._set_state("metadata-continuing")
            else:
                self._set_state("metadata-resumable" if self.resume and applies(meta) else kind)
            self.metadata = meta
            if not meta.is_folder and not meta.stream_mode:
                self.max_bytes = meta.size
            return MetadataReceived(meta)
        self._set_state(kind)
        if kind == MsgType.RESUME_SOURCE:
            source = SourceIdentity.from_json(frame.body)
            if self.metadata is None or source.size != self.metadata.size:
                raise RemoteProtocolError("resume source size differs from the metadata")
            return SourceReceived(source)
        if kind == MsgType.RESUME_ACCEPT:
            return self._accepted(parse_accept(frame.body))
        if kind == MsgType.HEAL_ACCEPT:
            offset = parse_heal_accept(frame.body)
            if offset != self.digest.total_bytes:
                raise RemoteProtocolError(
                    f"the sender continues at byte {offset}, but we hold {self.digest.total_bytes}"
                )
            return HealAccepted(offset)
        if kind == MsgType.DATA:
            self.frames_received += 1
            return DataReceived(frame.body)
        self.done = Totals.from_json(frame.body, "done")
        return DoneReceived(self.done)

    def offer(self, offset: int, prefix: Hasher | None) -> tuple[MsgType, bytes]:
        """The ResumeOffer for what we hold: `offset` bytes whose SHA-256 is `prefix`."""
        if self.max_bytes is None or not 0 <= offset <= self.max_bytes or (offset and prefix is None):
            raise LocalProtocolError("receiver: offer outside the announced size")
        self._set_state("offer")
        self._offered = (offset, prefix if offset else None)
        body = ResumeOffer(offset, prefix.hexdigest()) if offset and prefix is not None else ResumeOffer(0)
        return MsgType.RESUME_OFFER, body.to_json()

    def position(self) -> tuple[MsgType, bytes]:
        """Heal of a stream: the HealOffer for what we have written (call with the writer idle)."""
        self._set_state("position")
        return MsgType.HEAL_OFFER, HealOffer(self.digest.total_bytes, self.digest.chunk_count).to_json()

    def _accepted(self, offset: int) -> ResumeAccepted:
        assert self._offered is not None
        offered, prefix = self._offered
        if offset not in (0, offered):
            raise RemoteProtocolError(f"resume accepted at byte {offset}, but we offered {offered}")
        if offset and prefix is not None:
            self.digest.continue_from(prefix, offset)
        return ResumeAccepted(offset)

    def record_plaintext(self, chunk: bytes) -> None:
        """Account one decompressed chunk before it is written; stops at the first byte too many."""
        if self.max_bytes is not None and self.digest.total_bytes + len(chunk) > self.max_bytes:
            error = VerificationError(f"the sender sent more than the announced {self.max_bytes} bytes")
            self.fail()
            raise error
        self.digest.update(chunk)

    def complete(self) -> tuple[MsgType, bytes]:
        """Verify our totals against Done; returns the Complete frame or raises VerificationError.

        Call only after every Data frame received before Done has been recorded.
        """
        if self.done is None:
            raise LocalProtocolError("receiver: complete() before Done")
        ours = self.digest.totals()
        mismatch = totals_mismatch(self.done, ours)
        if mismatch is not None:
            self.fail()
            raise mismatch
        if self.max_bytes is not None and ours.total_bytes != self.max_bytes:
            self.fail()
            raise VerificationError(
                f"transfer incomplete: announced {self.max_bytes} bytes, received {ours.total_bytes}"
            )
        self._set_state("complete")
        return MsgType.COMPLETE, ours.to_json()

    def on_eof(self) -> TransferFinished:
        """The connection ended. Only acceptable while waiting for FinAck."""
        if self.state is ReceiverState.AWAIT_FIN_ACK:
            self._set_state("end")
            return TransferFinished()
        self.fail()
        raise StreamTruncated("transfer incomplete: the connection closed early")

"""Heal a dropped peer-to-peer connection through the same signaling session (protocol-extensions §2).

Between two of our CLIs that both announced ``"heal": 1``, the signaling WebSocket stays
open during the transfer. When the peer-to-peer link breaks while both processes live:

    either side: discard stale race messages -> `retry {"heal": n}` -> wait for the peer's
    both:        race TCP and WebRTC again with the keys of epoch n -> key confirmation
    then:        the transfer restarts on the new channel and resumes from the receiver's
                 partial (§1), so only the missing bytes travel again

A side that sees the peer's `retry` first closes its own link at once, so both pumps fail
fast and meet in the reconnect. A single file continues through the receiver's partial (§1);
folders and streams through the sender's replay window (§2.6, `send_continuation` and
`HeldSink` here, the rules in sp2p.proto.heal).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from sp2p.errors import ConnectionLost, PeerCancelled, SecurityError, Sp2pError, TransferTimeout
from sp2p.flow.connect import RACE_TYPES, ConnectOptions, PeerInfo, PeerLeftError, StatusFn, establish
from sp2p.flow.resume import cancel_handshake, heartbeat_tick, wait_answer
from sp2p.flow.session import KeepAlive, our_heal
from sp2p.link.framed import FrameLink
from sp2p.log import get_logger
from sp2p.net.channel import Channel
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.constants import MAX_CHUNK_SIZE, MsgType
from sp2p.proto.heal import HEAL_VERSION, STREAM_HEAL, OutOfWindow
from sp2p.proto.keys import SessionKeys
from sp2p.proto.messages import error_body
from sp2p.proto.signal import Envelope, SignalType
from sp2p.proto.transfer import SenderMachine
from sp2p.term.ui import human_duration

if TYPE_CHECKING:  # the send pump (threads, compressor) is not loaded for a receive
    from sp2p.link.send_pump import ChunkSource

log = get_logger(__name__)

#: one reconnect race may take at most this long; a path still down then is raced again (the
#: whole heal: -reconnect)
RACE_TIMEOUT = 15.0


def keeps_signaling(version: int, *, v1_file: bool) -> bool:
    """Whether to keep the signaling session to reconnect through. A version-1 peer heals only
    a single file that both sides resume (it announced heal only then, and reconnects straight
    into the resume frames), so with it we keep nothing open otherwise."""
    return version >= STREAM_HEAL or (version >= 1 and v1_file)


def quick_liveness(version: int) -> bool:
    """Only version-2 peers heartbeat every second when idle (protocol-extensions §2.3)."""
    return version >= STREAM_HEAL


def healable(exc: BaseException, peer_asked: bool) -> bool:
    """A broken or silent link heals; the peer's or our own decision to stop never does."""
    if isinstance(exc, ConnectionLost | TransferTimeout):
        return True
    # a peer that asked to heal may also have sent Cancel on the dead link before it asked
    return peer_asked and isinstance(exc, PeerCancelled)


def lost_line(failure: Sp2pError, budget: float) -> str:
    return f"Connection lost ({failure.message}); reconnecting for up to {human_duration(budget)}"


class PeerLeftSession(ConnectionLost):
    """The peer left the signaling session while we would reconnect: killed, interrupted or
    offline, so the rest of the -reconnect budget would not bring it back."""


class SignalingLost(ConnectionLost):
    """The signaling connection a reconnect goes through closed: no reconnect can start."""


def gave_up(exc: Sp2pError, budget: float, *, peer: str, hint: str | None = None) -> ConnectionLost:
    """The error once reconnecting is over; `peer` names the other side ("sender", "receiver")."""
    # these end the attempt at once, not after the budget: say so
    if isinstance(exc, PeerLeftSession):
        # it stopped, went offline, or spent its own -reconnect budget first
        return ConnectionLost(
            f"the connection was lost and the {peer} left before it could be re-established", hint=hint)
    if isinstance(exc, SignalingLost):
        return ConnectionLost(f"the connection was lost and could not be re-established: {exc.message}",
                              hint=hint)
    return ConnectionLost(
        f"the connection was lost and could not be re-established in {human_duration(budget)} "
        f"({exc.message})",
        hint=hint,
    )


class Healer:
    """Owns the signaling session after the first connection and runs reconnects."""

    def __init__(
        self,
        signal: SignalClient,
        keys: SessionKeys,
        peer: PeerInfo,
        opts: ConnectOptions,
        *,
        budget: float,
        version: int,
        keepalive: Envelope | None = None,
        status: StatusFn = lambda m, d: None,
    ) -> None:
        self._signal = signal
        self._keys = keys
        self._peer = peer
        self._opts = opts
        self.budget = budget
        #: the heal version both speak
        self.version = version
        self._status = status
        self.epoch = 0
        self._peer_epoch = 0
        self._asked = threading.Event()
        self._cond = threading.Condition()
        #: why the peer cannot come back (it left, or our signaling connection closed), once known
        self._gone: ConnectionLost | None = None
        self._current: Channel | None = None
        self._stop = threading.Event()
        self._keepalive = KeepAlive(signal, keepalive) if keepalive is not None else None
        if self._keepalive is not None:
            self._keepalive.__enter__()
        self._watcher = threading.Thread(target=self._watch, name="sp2p-heal-watch", daemon=True)
        self._watcher.start()

    # -- the signaling side ------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                env = self._signal.wait_for({SignalType.RETRY, SignalType.PEER_LEFT}, timeout=0.5)
            except TimeoutError:
                continue
            except SignalClosed as exc:
                self._set_gone(SignalingLost(f"lost the signaling server ({exc})"))
                return
            if env.type == SignalType.PEER_LEFT:
                self._set_gone(PeerLeftSession("the peer left the session"))
                continue
            epoch = env.payload.get("heal")
            if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > self._peer_epoch:
                with self._cond:
                    self._peer_epoch = epoch
                    self._cond.notify_all()
                self._asked.set()
                log.debug("peer asks to reconnect (epoch %d)", epoch)
                current = self._current
                if current is not None:  # make our pump fail now instead of after its timeout
                    with contextlib.suppress(Exception):
                        current.close()

    def _set_gone(self, why: ConnectionLost) -> None:
        with self._cond:
            self._gone = self._gone or why
            self._cond.notify_all()

    @property
    def _peer_gone(self) -> bool:
        return self._gone is not None

    def _gone_error(self) -> ConnectionLost:
        """Why the peer cannot come back, a fresh error each time (no stacked tracebacks)."""
        assert self._gone is not None
        return type(self._gone)(self._gone.message)

    @property
    def peer_asked(self) -> bool:
        return self._asked.is_set()

    def heals(self, exc: BaseException) -> bool:
        """A failure we reconnect after (so the pipeline does not tell the peer to stop)."""
        return healable(exc, self.peer_asked)

    def attach(self, channel: Channel) -> None:
        """The channel the transfer currently runs on (closed when the peer asks to reconnect)."""
        self._current = channel

    # -- reconnecting ---------------------------------------------------------------------------
    def reconnect(self, deadline: float) -> tuple[Channel, SessionKeys]:
        """A new confirmed channel and its keys, or ConnectionLost once `deadline` passed.

        A race that fails while the path is still down is followed by another (next epoch)
        until the deadline; either side that gives up on a race moves both to the next one.
        """
        while True:
            keys = self._meet(deadline)
            left = deadline - time.monotonic()
            if left <= 1:
                raise ConnectionLost("no time left to reconnect")
            opts = ConnectOptions(
                transport=self._opts.transport,
                allow_loopback=self._opts.allow_loopback,
                ice_servers=self._opts.ice_servers,
                prefer_tcp=False,
                keep_listener=False,
                timeout=min(RACE_TIMEOUT, left),
            )
            try:
                channel = establish(self._signal, keys, self._peer, opts, self._status, stop=self._moved_on)
            except SecurityError:
                raise  # a wrong key on the new link is an attack or a bug, never a reason to retry
            except PeerLeftError:
                raise PeerLeftSession("the peer left the session") from None
            except Sp2pError as exc:
                if self._gone is not None:
                    raise self._gone_error() from None
                if deadline - time.monotonic() <= 1:
                    raise ConnectionLost(f"reconnect failed: {exc.message}") from None
                log.debug("reconnect race %d failed (%s); racing again", self.epoch, exc.message)
                continue
            self._asked.clear()
            return channel, keys

    def _moved_on(self) -> bool:
        """The peer left, or gave up on the race we run and asked for the next one."""
        return self._peer_gone or self._peer_epoch > self.epoch

    def _meet(self, deadline: float) -> SessionKeys:
        """Start the next epoch with the peer: our retry, then its retry for that epoch."""
        self._asked.clear()
        self.epoch = max(self.epoch + 1, self._peer_epoch)
        self._signal.discard(RACE_TYPES)
        self._send_retry()
        with self._cond:
            while self._peer_epoch < self.epoch and not self._peer_gone:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost("the peer did not come back to reconnect")
                self._cond.wait(min(left, 0.5))
            if self._gone is not None:
                raise self._gone_error()
            if self._peer_epoch > self.epoch:  # it is further along: meet it there
                self.epoch = self._peer_epoch
                resend = True
            else:
                resend = False
        if resend:
            self._send_retry()
        return self._keys.for_epoch(self.epoch)

    def _send_retry(self) -> None:
        try:
            self._signal.send_type(SignalType.RETRY, {"heal": self.epoch})
        except SignalClosed as exc:
            raise SignalingLost(f"lost the signaling server ({exc})") from None

    def close(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.__exit__(None, None, None)
        self._signal.close()


# -------------------------------------------------- folders and streams: the sender (§2.6)


def send_continuation(fc: FrameLink, machine: SenderMachine) -> tuple[int, list[bytes]]:
    """Metadata again, the receiver's HealOffer, our HealAccept: (offset, chunks to re-send).

    An offset older than the replay window reaches the receiver as an Error with our reason;
    any other failure as Cancel, as from the send pipeline.
    """
    try:
        fc.send_frame(*machine.start_continuing())
        answer = wait_answer(fc, machine.on_position, heartbeat_tick(fc),
                             "the receiver disconnected before the transfer continued")
    except OutOfWindow as exc:
        fc.try_send_frame(MsgType.ERROR, error_body(exc.message))
        raise
    except Sp2pError:
        cancel_handshake(fc, machine)
        raise
    replay, (kind, body) = answer
    fc.send_frame(kind, body)
    return machine.digest.total_bytes, replay


class Replayed:
    """The chunks a reconnect must send again, then the source they were read from."""

    def __init__(self, replay: list[bytes], rest: ChunkSource) -> None:
        self._replay = replay
        self._next = 0
        self._rest = rest

    def read_chunk(self, size: int = MAX_CHUNK_SIZE) -> bytes | None:
        if self._next < len(self._replay):
            chunk = self._replay[self._next]
            self._replay[self._next] = b""  # the window holds it again once it is re-sent
            self._next += 1
            return chunk  # as it was sent before: any size up to MAX_CHUNK_SIZE
        return self._rest.read_chunk(size)


# ------------------------------------------------ folders and streams: the receiver (§2.6)


class HeldSink:
    """A folder, temp file or stdout sink that outlives a broken link: the pipeline's abort is
    held back until the transfer really gives up (`close`), so a reconnect appends to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._done = False

    @property
    def saved(self) -> list[Any]:
        return list(self.inner.saved)

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def commit(self) -> None:
        self.inner.commit()
        self._done = True

    def abort(self) -> None:
        """Held: the output stays for the reconnect."""

    def close(self) -> None:
        """The transfer is over: what was not committed goes."""
        if not self._done:
            self._done = True
            self.inner.abort()


__all__ = ["HEAL_VERSION", "Healer", "HeldSink", "Replayed", "healable", "keeps_signaling", "our_heal",
           "quick_liveness", "send_continuation"]

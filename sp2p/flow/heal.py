"""Heal a dropped peer-to-peer connection through the same signaling session (protocol-extensions §2).

Between two of our CLIs that both announced ``"heal": 1``, the signaling WebSocket stays
open during the transfer. When the peer-to-peer link breaks while both processes live:

    either side: discard stale race messages -> `retry {"heal": n}` -> wait for the peer's
    both:        race TCP and WebRTC again with the keys of epoch n -> key confirmation
    then:        the transfer restarts on the new channel and resumes from the receiver's
                 partial (§1), so only the missing bytes travel again

A side that sees the peer's `retry` first closes its own link at once, so both pumps fail
fast and meet in the reconnect. Only single files heal (they resume by offset).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sp2p.config import Config
from sp2p.errors import ConnectionLost, PeerCancelled, Sp2pError, TransferTimeout
from sp2p.flow.connect import ConnectOptions, PeerInfo, establish
from sp2p.flow.session import KeepAlive
from sp2p.net.channel import Channel
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.keys import SessionKeys
from sp2p.proto.resume import RESUME_VERSION
from sp2p.proto.signal import Envelope, SignalType
from sp2p.term.ui import human_duration

log = logging.getLogger(__name__)

HEAL_VERSION = 1
#: one reconnect race may take at most this long (the whole heal: -reconnect)
RACE_TIMEOUT = 30.0
#: messages of a connection race; what is left of an earlier race must not reach the next one
_RACE_TYPES = frozenset(
    {SignalType.DIRECT, SignalType.OFFER, SignalType.ANSWER, SignalType.CANDIDATE, SignalType.CONNECTED}
)

StatusFn = Callable[[str, str], None]


def our_heal(cfg: Config, *, can_resume: bool) -> int:
    """What we announce: healing needs resume (it continues through a partial)."""
    return HEAL_VERSION if cfg.reconnect > 0 and can_resume and not cfg.no_resume else 0


def heal_negotiated(ours: int, theirs: int) -> bool:
    return ours >= HEAL_VERSION and theirs >= HEAL_VERSION


def healable(exc: BaseException, peer_asked: bool) -> bool:
    """A broken or silent link heals; the peer's or our own decision to stop never does."""
    if isinstance(exc, ConnectionLost | TransferTimeout):
        return True
    # a peer that asked to heal may also have sent Cancel on the dead link before it asked
    return peer_asked and isinstance(exc, PeerCancelled)


def lost_line(failure: Sp2pError, budget: float) -> str:
    return f"Connection lost ({failure.message}); reconnecting for up to {human_duration(budget)}"


def gave_up(exc: Sp2pError, budget: float, *, hint: str | None = None) -> ConnectionLost:
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
        keepalive: Envelope | None = None,
        status: StatusFn = lambda m, d: None,
    ) -> None:
        self._signal = signal
        self._keys = keys
        self._peer = peer
        self._opts = opts
        self.budget = budget
        self._status = status
        self.epoch = 0
        self._peer_epoch = 0
        self._asked = threading.Event()
        self._cond = threading.Condition()
        self._peer_gone = False
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
            except SignalClosed:
                self._set_gone()
                return
            if env.type == SignalType.PEER_LEFT:
                self._set_gone()
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

    def _set_gone(self) -> None:
        with self._cond:
            self._peer_gone = True
            self._cond.notify_all()

    @property
    def peer_asked(self) -> bool:
        return self._asked.is_set()

    def attach(self, channel: Channel) -> None:
        """The channel the transfer currently runs on (closed when the peer asks to reconnect)."""
        self._current = channel

    # -- reconnecting ---------------------------------------------------------------------------
    def reconnect(self, deadline: float) -> tuple[Channel, SessionKeys]:
        """A new confirmed channel and its keys, or ConnectionLost once `deadline` passed."""
        self._asked.clear()
        self.epoch = max(self.epoch + 1, self._peer_epoch)
        self._signal.discard(_RACE_TYPES)
        self._send_retry()
        with self._cond:
            while self._peer_epoch < self.epoch and not self._peer_gone:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost("the peer did not come back to reconnect")
                self._cond.wait(min(left, 0.5))
            if self._peer_gone:
                raise ConnectionLost("the peer left the session")
            if self._peer_epoch > self.epoch:  # it is further along: meet it there
                self.epoch = self._peer_epoch
                resend = True
            else:
                resend = False
        if resend:
            self._send_retry()
        keys = self._keys.for_epoch(self.epoch)
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
            channel = establish(self._signal, keys, self._peer, opts, self._status)
        except Sp2pError as exc:
            raise ConnectionLost(f"reconnect failed: {exc.message}") from None
        self._asked.clear()
        return channel, keys

    def _send_retry(self) -> None:
        try:
            self._signal.send_type(SignalType.RETRY, {"heal": self.epoch})
        except SignalClosed as exc:
            raise ConnectionLost(f"lost the signaling server: {exc}") from None

    def close(self) -> None:
        self._stop.set()
        if self._keepalive is not None:
            self._keepalive.__exit__(None, None, None)
        self._signal.close()


__all__ = ["RESUME_VERSION", "Healer", "heal_negotiated", "healable", "our_heal"]

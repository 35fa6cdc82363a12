"""A session side's life after its first message: every message through `relay.route()`,
and the resulting action carried out (shared facts through the `SessionStore`, delivery
through the `Router`). server.ws opens the side (hello or join) and hands it here."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server import relay
from server.connection import Peer
from server.ratelimit import TokenBucket
from server.store import SessionRecord, StoreUnavailable
from server.teardown import other_role, redact
from server.turn import turn_credentials
from server.write_batch import WriteBatch
from sp2p.proto.constants import Role
from sp2p.proto.signal import Envelope, ErrorCode, SignalType

if TYPE_CHECKING:
    from server.state import ServerState

log = logging.getLogger("sp2p.server")

#: seconds between a side's message-driven touches of its session. With Redis a touch is
#: a round trip, half of what relaying one message cost; the idle deadline is minutes and
#: the reaper reports every local peer's activity before it expires anything, so a burst
#: of signaling needs one touch, not one per message.
TOUCH_EVERY = 1.0


@dataclass(slots=True)
class Link:
    """One side of a session, as its own handler knows it. Counters only this side
    changes live here; the shared facts are in the store. It is also what `relay.route()`
    reads (relay.PeerFacts), so no snapshot is built per message."""

    record: SessionRecord
    role: Role
    #: this side's client IP (TURN budgets are per IP)
    ip: str
    turn_available: bool
    candidates: int = 0
    turn_answers: int = 0
    file_info_set: bool = False
    completed: bool = False
    #: messages relayed and not yet counted in the metrics (counted once per read)
    relayed: int = 0
    #: the credentials handed out (repeated requests get the same ones)
    turn_payload: str | None = None
    #: monotonic time of this side's last touch of the session (create and join touch it)
    touched_at: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def has_peer(self) -> bool:
        return self.record.joined_at is not None

    @property
    def since_join(self) -> float | None:
        joined_at = self.record.joined_at
        return time.time() - joined_at if joined_at is not None else None


def relay_loop(state: ServerState, peer: Peer, link: Link) -> None:
    config = state.config
    bucket = TokenBucket(config.msg_rate, config.msg_burst)
    limits = relay.Limits(
        turn_delay=config.turn_delay,
        turn_max_per_peer=config.turn_max_per_peer,
        max_candidates=config.max_candidates,
        max_file_info=config.max_file_info,
    )
    batch = WriteBatch()
    try:
        while True:
            text = peer.receive()
            if text is None:
                continue
            if not bucket.take():
                log.info("closing flooding peer session=%s role=%s", redact(link.id), link.role)
                peer.fail(ErrorCode.RATE_LIMITED, "too many messages")
                return
            more = peer.has_input()  # more of this read to come: relay them in one write
            try:
                if more:
                    with batch.holding():
                        _step(state, link, text, limits)
                else:
                    _step(state, link, text, limits)
            except StoreUnavailable as exc:
                # the connection stays: its peer-to-peer transfer may not need us any more
                log.warning("message dropped session=%s: %s", redact(link.id), exc)
            if not more:
                _count_relayed(state, link)
                batch.flush()
    finally:
        _count_relayed(state, link)
        batch.flush()


def _count_relayed(state: ServerState, link: Link) -> None:
    """The metrics' counter once per read, not per message (it takes a lock, and with
    several workers writes a shared file)."""
    if link.relayed:
        state.metrics.relayed(link.relayed)
        link.relayed = 0


def _step(state: ServerState, link: Link, text: str, limits: relay.Limits) -> None:
    now = time.monotonic()
    if now - link.touched_at >= TOUCH_EVERY:
        link.touched_at = now
        state.store.touch(link.id)
    action = relay.route(text, link, limits)
    if action is relay.NO_PEER_YET:  # the receiver may have joined since (on any node)
        pairing = state.router.take_pairing(link.id)
        fresh = pairing.applied_to(link.record) if pairing is not None else state.store.get(link.id)
        if fresh is None or not fresh.joined:
            return
        link.record = fresh
        action = relay.route(text, link, limits)
    _apply(state, link, action)


def _apply(state: ServerState, link: Link, action: relay.Action) -> None:
    match action:
        case relay.Forward(text, kind):
            if kind == SignalType.CANDIDATE:
                link.candidates += 1
            state.router.send(link.record, other_role(link.role), text)
            link.relayed += 1
        case relay.StoreFileInfo(data):
            link.file_info_set = True
            state.store.set_file_info(link.id, data)
        case relay.CountTransfer(nbytes):
            link.completed = True
            state.store.mark_completed(link.id, nbytes)  # counted once if both peers report it
        case relay.AnswerRelayRetry(delay, text):
            link.turn_answers += 1
            _schedule_turn(state, link, delay, text)
        case relay.Ignore(reason):
            log.debug("ignored message session=%s: %s", redact(link.id), reason)


def _schedule_turn(state: ServerState, link: Link, delay: float, text: str) -> None:
    """Credentials to the requester after the minimum delay, then the relay-retry to the
    other peer; a timer (a greenlet under gevent) waits so this peer's messages keep
    flowing meanwhile."""

    def fire() -> None:
        try:
            if state.store.get(link.id) is None:
                return  # ended meanwhile
            with link.lock:
                payload = link.turn_payload
                if payload is None:
                    if not state.turn_budget.hit(link.ip):
                        log.info("TURN budget exhausted for a client IP; no credentials")
                    else:
                        creds = turn_credentials(
                            state.config, now_unix=time.time(), session_id=link.id, role=link.role.value
                        )
                        payload = Envelope.build(SignalType.TURN_CREDENTIALS, creds).to_json()
                        link.turn_payload = payload
                        state.metrics.turn_issued()
            if payload is not None:
                state.router.send(link.record, link.role, payload)
            state.router.send(link.record, other_role(link.role), text)
        except StoreUnavailable as exc:
            log.warning("TURN answer dropped session=%s: %s", redact(link.id), exc)

    if delay <= 0:
        fire()
        return
    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()

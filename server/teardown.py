"""Ending sessions: `peer-left` or a clear error to whoever remains, then both sockets close.

Used by the connection handlers (server.ws, through `Teardowns`) and by the node's
background tasks (server.state: reaper, dead-node sweep, shutdown). It needs only the
store, the router and the metrics, so it takes any object that has them (`Services`) and
imports neither side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from server import logsink
from server.background import background_ran, background_rest, give_way
from server.connection import CLOSE_GOING_AWAY, Peer
from server.metrics import Metrics
from server.store import Router, SessionRecord, SessionStore, StoreUnavailable
from server.write_batch import WriteBatch
from sp2p.proto.constants import Role
from sp2p.proto.signal import Envelope, Error, ErrorCode, SignalType

log = logging.getLogger("sp2p.server")

#: sessions ended per slice of the background teardown: one pipeline of end scripts and a
#: few ms of work, then everything else that is ready runs first
SLICE = 64

#: the two notices a teardown sends, built once
PEER_LEFT = Envelope.build(SignalType.PEER_LEFT).to_json()
EXPIRED = Envelope.build(SignalType.ERROR, Error(ErrorCode.SESSION_EXPIRED, "session expired")).to_json()


class Services(Protocol):
    """What a teardown touches (a ServerState has all three)."""

    store: SessionStore
    router: Router
    metrics: Metrics


def redact(session_id: str) -> str:
    """Session ids are half of a transfer code: log only a prefix (W-14)."""
    return session_id[:3] + "…"


def other_role(role: Role) -> Role:
    return Role.RECEIVER if role is Role.SENDER else Role.SENDER


def end_session(
    state: Services, session_id: str, *, leaver: Role | None, reason: str = "session ended"
) -> None:
    """Tear down: `peer-left` to whoever remains, close both sockets. Idempotent."""
    record = state.store.end(session_id)
    if record is None:
        return
    notice = PEER_LEFT if leaver is not None else None
    _teardown(state, record, notice, None if leaver is None else other_role(leaver), reason)


def expire_session(state: Services, session_id: str) -> None:
    """The reaper's teardown: a clear `error` to both sides first (S13), then close."""
    record = state.store.end(session_id)
    if record is None:
        return
    _teardown(state, record, EXPIRED, None, "session expired")


def _teardown(
    state: Services,
    record: SessionRecord,
    notice: str | None,
    notify: Role | None,
    reason: str,
    *,
    logged: bool = True,
) -> None:
    """After the store ended `record`: `notice` to `notify` (None: to both), then close;
    a log line unless not `logged` (the caller sums it up)."""
    state.metrics.session_ended(record.joined)
    roles = [Role.SENDER, Role.RECEIVER] if record.joined else [Role.SENDER]
    batch = WriteBatch()
    with batch.holding():  # a local peer's notice and close frame leave in one write
        if notice is not None:
            for role in roles:
                if notify is None or role is notify:
                    state.router.send(record, role, notice)
        for role in roles:
            state.router.close(record, role, CLOSE_GOING_AWAY, reason)
    batch.flush()  # what no close took along (a peer another node holds is not in it)
    if logged:
        logsink.info(log, "peer disconnected session=%s", redact(record.id))


def lost_session(state: Services, session_id: str, role: Role, peer: Peer) -> None:
    """A local connection whose session the store no longer has (Redis restarted without
    its data): tell it clearly and close, instead of leaving it waiting forever."""
    if peer.closed or state.router.local(session_id, role) is not peer:
        return  # ended normally a moment ago
    log.warning("session lost by the store session=%s", redact(session_id))
    lost = Error(ErrorCode.SESSION_EXPIRED, "session lost by the server, please start again")
    peer.send(Envelope.build(SignalType.ERROR, lost))
    peer.close(CLOSE_GOING_AWAY, "session lost")


class Teardowns:
    """Sessions whose connection went away, ended by one worker (a greenlet under gevent).

    When thousands of clients leave at once, every handler wakes in the same turn of the
    loop. Had each ended its session itself (or waited at a gate for its turn), a new
    connection's hello and join waited behind thousands of end scripts, and a paired
    session's `peer-left` behind all of them (seconds at 12,500 per worker). Here a handler
    only queues its session and is done; the worker ends `SLICE` at a time (one pipeline
    of end scripts). A session whose peer may still be there (someone waits for
    `peer-left`) is urgent: urgent slices go first, each followed by one turn of the loop
    only. The others are background work: a slice of them first rests as long as the
    worker's background share asks (server.background.Pace; an urgent leave cuts the rest
    short), and after it the worker gives way to everything else that is ready
    (server.background.give_way).
    """

    def __init__(self, state: Services) -> None:
        self._state = state
        self._urgent: deque[tuple[str, Role]] = deque()
        self._background: deque[tuple[str, Role]] = deque()
        self._wake = threading.Event()
        #: set by an urgent leave: ends a background rest
        self._hurry = threading.Event()
        #: held while a slice is ended (drain() waits for the worker's slice in flight)
        self._slice_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def leave(self, session_id: str, role: Role, *, urgent: bool) -> None:
        """`role`'s connection is gone (and detached from the router): end its session,
        `peer-left` to the other side."""
        (self._urgent if urgent else self._background).append((session_id, role))
        if self._worker is None:
            self._start()
        if urgent:
            self._hurry.set()
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._urgent) + len(self._background)

    def drain(self) -> None:
        """End everything queued, now (shutdown)."""
        while self._slice(self._urgent) or self._slice(self._background):
            pass

    def _start(self) -> None:
        with self._start_lock:  # started on first use: in the worker process, after the fork
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="sp2p-teardown", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # what is queued from here on sets it again
            while self._urgent or self._background:
                if self._urgent:
                    self._slice(self._urgent)
                    time.sleep(0)  # one turn of the loop: someone waits for a peer-left
                    continue
                # background work: it rests as the worker's Pace says (an urgent leave
                # cuts the rest short), then waits for a quiet moment
                rest = background_rest()
                while rest > 0 and not self._hurry.wait(rest):
                    rest = background_rest()  # (a wait may end a little early)
                self._hurry.clear()
                if self._urgent:
                    continue
                started = time.monotonic()
                self._slice(self._background)
                background_ran(started)
                give_way()

    def _slice(self, queue: deque[tuple[str, Role]]) -> bool:
        """End up to SLICE sessions of `queue`; False if it was empty."""
        with self._slice_lock:
            batch = _take(queue, SLICE)
            if not batch:
                return False
            try:
                self._end(batch, background=queue is self._background)
            except Exception:  # the worker must live on: the reaper ends what was missed
                log.exception("ending %d sessions failed", len(batch))
        return True

    def _end(self, batch: Sequence[tuple[str, Role]], *, background: bool) -> None:
        state = self._state
        try:
            records = state.store.end_many([session_id for session_id, _ in batch], background=background)
        except StoreUnavailable as exc:
            # not a bug: the records expire, or the reaper ends them once the store is back
            log.warning("%d sessions left to the reaper: %s", len(batch), exc)
            return
        alone = 0  # senders nobody joined: one log line for the lot (a mass close is
        # thousands of them; a line each was a fifth of the teardown's CPU)
        for (_, role), record in zip(batch, records, strict=True):
            if record is not None:
                _teardown(state, record, PEER_LEFT, other_role(role), "session ended", logged=record.joined)
                alone += not record.joined
        if alone:
            log.info("peer disconnected: %d sessions nobody had joined", alone)


def _take(queue: deque[tuple[str, Role]], limit: int) -> list[tuple[str, Role]]:
    taken: list[tuple[str, Role]] = []
    while queue and len(taken) < limit:
        taken.append(queue.popleft())
    return taken

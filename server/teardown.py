"""Ending sessions: `peer-left` or a clear error to whoever remains, then both sockets close.

Used by the connection handlers (server.ws) and by the node's background tasks
(server.state: reaper, dead-node sweep, shutdown). It needs only the store, the router and
the metrics, so it takes any object that has them (`Services`) and imports neither side.
"""

from __future__ import annotations

import logging
from typing import Protocol

from server.connection import CLOSE_GOING_AWAY, Peer, WriteBatch
from server.metrics import Metrics
from server.store import Router, SessionRecord, SessionStore
from sp2p.proto.constants import Role
from sp2p.proto.signal import Envelope, Error, ErrorCode, SignalType

log = logging.getLogger("sp2p.server")

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
    state: Services, record: SessionRecord, notice: str | None, notify: Role | None, reason: str
) -> None:
    """After the store ended `record`: `notice` to `notify` (None: to both), then close."""
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
    log.info("peer disconnected session=%s", redact(record.id))


def lost_session(state: Services, session_id: str, role: Role, peer: Peer) -> None:
    """A local connection whose session the store no longer has (Redis restarted without
    its data): tell it clearly and close, instead of leaving it waiting forever."""
    if peer.closed or state.router.local(session_id, role) is not peer:
        return  # ended normally a moment ago
    log.warning("session lost by the store session=%s", redact(session_id))
    lost = Error(ErrorCode.SESSION_EXPIRED, "session lost by the server, please start again")
    peer.send(Envelope.build(SignalType.ERROR, lost))
    peer.close(CLOSE_GOING_AWAY, "session lost")

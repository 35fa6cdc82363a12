"""The `/ws` signalling endpoint: a thin loop around `server.relay` decisions.

One greenlet per connection (gunicorn's gevent worker; a thread under werkzeug in the
in-process tests). The first message makes the connection a sender (`hello`) or a
receiver (`join`); afterwards every message goes through `relay.route()` and the resulting
action is carried out here. When either side goes away the other gets `peer-left`, both
sockets close and the session is gone (single use).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from server import relay
from server.connection import CLOSE_GOING_AWAY, Peer, PeerClosed
from server.ratelimit import TokenBucket
from server.relay import Refusal
from server.sessions import JoinRefused, Session
from server.turn import stun_servers, turn_credentials
from sp2p.proto.constants import Role
from sp2p.proto.signal import (
    Envelope,
    Error,
    ErrorCode,
    Hello,
    Join,
    Notice,
    PeerJoined,
    SignalType,
    Welcome,
)

if TYPE_CHECKING:
    from server.state import ServerState

log = logging.getLogger("sp2p.server")


def redact(session_id: str) -> str:
    """Session ids are half of a transfer code: log only a prefix (W-14)."""
    return session_id[:3] + "…"


def handle(state: ServerState, peer: Peer, base_url: str | None) -> None:
    """Serve one WebSocket until it closes. Never raises."""
    refusal = state.connections.acquire(peer.ip)
    if refusal is not None:
        peer.fail(refusal.code, refusal.message)
        return
    with state.peers_lock:
        state.peers.add(peer)
    try:
        _serve(state, peer, base_url)
    except PeerClosed:
        pass
    except Exception:
        log.exception("signalling handler failed")
    finally:
        with state.peers_lock:
            state.peers.discard(peer)
        state.connections.release(peer.ip)


def _serve(state: ServerState, peer: Peer, base_url: str | None) -> None:
    text = peer.receive(timeout=state.config.hello_timeout)
    first = relay.parse_first(text) if text is not None else relay.HELLO_TIMEOUT
    if isinstance(first, Refusal):
        peer.fail(first.code, first.message)
        return
    if isinstance(first, Hello):
        session = _open(state, peer, first, base_url)
        role = Role.SENDER
    else:
        session = _join(state, peer, first, base_url)
        role = Role.RECEIVER
    if session is None:
        return
    try:
        _relay_loop(state, peer, session, role)
    finally:
        end_session(state, session, leaver=role)


def _welcome(state: ServerState, session: Session, base_url: str | None, peer_type: str) -> Welcome:
    config = state.config
    return Welcome(
        session_id=session.id,
        ice_servers=stun_servers(config),
        turn_available=config.turn_available,
        peer_client_type=peer_type,
        server_version=config.server_version,
        base_url=base_url or "",
    )


def _open(state: ServerState, peer: Peer, hello: Hello, base_url: str | None) -> Session | None:
    client_type = relay.clean_client_field(hello.client_type)
    created = state.registry.create(peer, version=hello.version, client_type=client_type)
    if isinstance(created, Refusal):
        peer.fail(created.code, created.message)
        return None
    state.stats.add("attemptedSends")
    log.info("peer connected session=%s role=sender client=%s", redact(created.id), client_type)
    if not peer.send(Envelope.build(SignalType.WELCOME, _welcome(state, created, base_url, ""))):
        end_session(state, created, leaver=Role.SENDER)
        return None
    return created


def _join(state: ServerState, peer: Peer, join: Join, base_url: str | None) -> Session | None:
    client_type = relay.clean_client_field(join.client_type)
    if state.miss_limiter.exceeded(peer.ip):
        peer.fail(ErrorCode.RATE_LIMITED, "too many failed attempts, try again later")
        return None
    # Hold our write lock while attaching: nothing the sender relays may reach this
    # receiver before its welcome (upstream ordering: welcome, then peer-joined).
    with peer.write_lock:
        joined = state.registry.join(join.session_id, peer, version=join.version, client_type=client_type)
        if isinstance(joined, JoinRefused):
            _refuse_join(state, peer, joined)
            return None
        welcome = _welcome(state, joined, base_url, joined.sender_client_type)
        sent = peer.send(Envelope.build(SignalType.WELCOME, welcome))
    if not sent:
        end_session(state, joined, leaver=Role.RECEIVER)
        return None
    sender = joined.sender
    assert isinstance(sender, Peer)
    sender.send(Envelope.build(SignalType.PEER_JOINED, PeerJoined(client_type)))
    state.stats.add("connectedSends")
    log.info("peer connected session=%s role=receiver client=%s", redact(joined.id), client_type)
    return joined


def _refuse_join(state: ServerState, peer: Peer, refused: JoinRefused) -> None:
    code = refused.refusal.code
    if code is ErrorCode.SESSION_NOT_FOUND:
        state.miss_limiter.hit(peer.ip)  # failed guesses back off (S1)
    if refused.notify_sender is not None:
        # ours: the sender hears about it, non-fatally; its session stays open (W-6)
        sender = refused.notify_sender
        assert isinstance(sender, Peer)
        notice = Notice(ErrorCode.PEER_VERSION_MISMATCH, refused.refusal.message)
        sender.send(Envelope.build(SignalType.NOTICE, notice))
    peer.fail(code, refused.refusal.message)


def _relay_loop(state: ServerState, peer: Peer, session: Session, role: Role) -> None:
    config = state.config
    bucket = TokenBucket(config.msg_rate, config.msg_burst)
    limits = relay.Limits(
        turn_delay=config.turn_delay,
        turn_max_per_peer=config.turn_max_per_peer,
        max_candidates=config.max_candidates,
        max_file_info=config.max_file_info,
    )
    while not session.ended:
        text = peer.receive(timeout=30.0)
        if text is None:
            continue
        if not bucket.take():
            log.info("closing flooding peer session=%s role=%s", redact(session.id), role)
            peer.fail(ErrorCode.RATE_LIMITED, "too many messages")
            return
        state.registry.touch(session)
        other = session.other(role)
        view = relay.PeerView(
            role=role,
            has_peer=other is not None,
            since_join=(time.monotonic() - session.joined_at) if session.joined_at else None,
            turn_available=config.turn_available,
            turn_answers=session.turn_answers.get(role, 0),
            candidates=session.candidates.get(role, 0),
            file_info_set=session.file_info is not None,
            completed=session.completed,
        )
        _apply(state, session, role, relay.route(text, view, limits))


def _apply(state: ServerState, session: Session, role: Role, action: relay.Action) -> None:
    other = session.other(role)
    match action:
        case relay.Forward(text, kind):
            if isinstance(other, Peer):
                if kind == SignalType.CANDIDATE:
                    session.candidates[role] = session.candidates.get(role, 0) + 1
                other.send_text(text)
        case relay.StoreFileInfo(data):
            state.registry.set_file_info(session, data)
        case relay.CountTransfer(nbytes):
            if not state.registry.mark_completed(session):
                return  # the other peer's handler counted it a moment ago
            state.stats.add("completedSends")
            state.stats.add("bytesTransferred", nbytes)
        case relay.AnswerRelayRetry(delay, text):
            session.turn_answers[role] = session.turn_answers.get(role, 0) + 1
            _schedule_turn(state, session, role, delay, text)
        case relay.Ignore(reason):
            log.debug("ignored message session=%s: %s", redact(session.id), reason)


def _schedule_turn(state: ServerState, session: Session, role: Role, delay: float, text: str) -> None:
    """Credentials to the requester after the minimum delay, then the relay-retry to the
    other peer; a timer thread waits so this peer's messages keep flowing meanwhile."""
    requester = session.peer(role)
    assert isinstance(requester, Peer)

    def fire() -> None:
        if session.ended:
            return
        payload = session.turn_cache.get(role)
        if payload is None:
            if not state.turn_budget.hit(requester.ip):
                log.info("TURN budget exhausted for a client IP; no credentials")
            else:
                creds = turn_credentials(
                    state.config, now_unix=time.time(), session_id=session.id, role=role.value
                )
                payload = Envelope.build(SignalType.TURN_CREDENTIALS, creds).to_json()
                session.turn_cache[role] = payload
        if payload is not None:
            requester.send_text(payload)
        other = session.other(role)
        if other is not None and not session.ended:
            assert isinstance(other, Peer)
            other.send_text(text)

    if delay <= 0:
        fire()
        return
    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()


def end_session(
    state: ServerState, session: Session, *, leaver: Role | None, reason: str = "session ended"
) -> None:
    """Tear down: `peer-left` to whoever remains, close both sockets. Idempotent."""
    if not state.registry.end(session):
        return
    peers = [p for p in (session.sender, session.receiver) if p is not None]
    if leaver is not None:
        remaining = session.other(leaver)
        if isinstance(remaining, Peer) and not remaining.closed:
            remaining.send(Envelope.build(SignalType.PEER_LEFT))
    for p in peers:
        assert isinstance(p, Peer)
        p.close(CLOSE_GOING_AWAY, reason)
    log.info("peer disconnected session=%s", redact(session.id))


def expire_session(state: ServerState, session: Session) -> None:
    """The reaper's teardown: a clear `error` first (S13), then close."""
    expired = Envelope.build(SignalType.ERROR, Error(ErrorCode.SESSION_EXPIRED, "session expired"))
    for p in (session.sender, session.receiver):
        if isinstance(p, Peer) and not p.closed:
            p.send(expired)
    end_session(state, session, leaver=None, reason="session expired")

"""The `/ws` signalling endpoint: a thin loop around `server.relay` decisions.

One greenlet per connection (gunicorn's gevent worker; a thread under werkzeug in the
in-process tests). The first message makes the connection a sender (`hello`) or a
receiver (`join`), here; afterwards every message goes through `relay.route()` and the
resulting action is carried out (server.ws_relay): shared facts through the
`SessionStore`, delivery through the `Router` (the other peer may be held by another node).
When either side goes away the other gets `peer-left`, both sockets close and the session is
gone (single use).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server import logsink, relay
from server.connection import CLOSE_GOING_AWAY, Peer, PeerClosed
from server.relay import Refusal
from server.sessions import TOO_MANY_MISSES
from server.store import JoinRefused, SessionRecord, StoreUnavailable
from server.teardown import PEER_LEFT, end_session, redact
from server.turn import stun_servers
from server.ws_relay import Link, relay_loop
from sp2p.proto.constants import Role
from sp2p.proto.signal import (
    Envelope,
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

STORE_DOWN = Refusal(ErrorCode.SERVER_BUSY, "signaling store unavailable, try again shortly")
def handle(
    state: ServerState,
    peer: Peer,
    base_url: str | None,
    *,
    movable: bool = True,
    joined: SessionRecord | None = None,
) -> None:
    """Serve one WebSocket until it closes. Never raises. `movable` False: it was handed
    to us (server.handoff) and stays; `joined`: the session its join already took."""
    refusal = state.connections.acquire(peer.ip)
    if refusal is not None:
        state.metrics.refused(refusal.code)
        peer.fail(refusal.code, refusal.message)
        if joined is not None:  # its sender must not wait for a receiver we turned away
            _ended(state, joined.id, Role.RECEIVER)
        return
    with state.peers_lock:
        state.peers.add(peer)
    state.metrics.connection(+1)
    try:
        _serve(state, peer, base_url, movable=movable, joined=joined)
    except PeerClosed:
        pass
    except StoreUnavailable as exc:
        # Redis went away while this connection lived (often: its teardown): not a bug; the
        # record expires, or the reaper ends it once Redis is back
        log.warning("connection ended while the store was unavailable: %s", exc)
    except Exception:
        log.exception("signalling handler failed")
    finally:
        state.metrics.connection(-1)
        with state.peers_lock:
            state.peers.discard(peer)
        state.connections.release(peer.ip)


def _serve(
    state: ServerState, peer: Peer, base_url: str | None, *, movable: bool, joined: SessionRecord | None
) -> None:
    text = peer.receive(timeout=state.config.hello_timeout)
    first = relay.parse_first(text) if text is not None else relay.HELLO_TIMEOUT
    if isinstance(first, Refusal):
        peer.fail(first.code, first.message)
        return
    try:
        link = (
            _open(state, peer, first, base_url)
            if isinstance(first, Hello)
            else _join(state, peer, first, base_url, text=text if movable else None, carried=joined)
        )
    except StoreUnavailable as exc:
        log.warning("refusing a new session: %s", exc)
        state.metrics.refused(STORE_DOWN.code)
        peer.fail(STORE_DOWN.code, STORE_DOWN.message)
        return
    if link is None:
        return
    try:
        relay_loop(state, peer, link)
    finally:
        # urgent if the other side may be there to hear peer-left (a sender learns of its
        # receiver from its next message, or from the pairing noted for it)
        urgent = link.has_peer or state.router.take_pairing(link.id) is not None
        if state.router.detach(link.id, link.role, peer):  # else a teardown closed us: ended
            state.teardowns.leave(link.id, link.role, urgent=urgent)


def _welcome(state: ServerState, record: SessionRecord, base_url: str | None, peer_type: str) -> Welcome:
    config = state.config
    return Welcome(
        session_id=record.id,
        ice_servers=stun_servers(config),
        turn_available=config.turn_available,
        peer_client_type=peer_type,
        server_version=config.server_version,
        base_url=base_url or "",
    )


def _open(state: ServerState, peer: Peer, hello: Hello, base_url: str | None) -> Link | None:
    client_type = relay.clean_client_field(hello.client_type)
    created = state.store.create(peer.ip, version=hello.version, client_type=client_type, node=state.node)
    if isinstance(created, Refusal):
        state.metrics.refused(created.code)
        peer.fail(created.code, created.message)
        return None
    state.router.attach(created.id, Role.SENDER, peer)
    peer.unhurried = True  # until a receiver joins (the router marks it then)
    state.metrics.session_opened()
    logsink.info(log, "peer connected session=%s role=sender client=%s", redact(created.id), client_type)
    if not peer.send(Envelope.build(SignalType.WELCOME, _welcome(state, created, base_url, ""))):
        state.router.detach(created.id, Role.SENDER, peer)
        end_session(state, created.id, leaver=Role.SENDER)
        return None
    return Link(created, Role.SENDER, peer.ip, state.config.turn_available)


def _join(
    state: ServerState,
    peer: Peer,
    join: Join,
    base_url: str | None,
    *,
    text: str | None,
    carried: SessionRecord | None,
) -> Link | None:
    """A receiver. `text`: its join's text, if it may move to its sender's worker;
    `carried`: the session another worker's join took for us (server.handoff)."""
    client_type = relay.clean_client_field(join.client_type)
    # Attach, and hold our write lock, before taking the slot: nothing the sender relays
    # may reach this receiver before its welcome (upstream order: welcome, peer-joined),
    # and nothing may arrive while no connection is registered for the slot.
    with peer.write_lock:
        if not state.router.attach(join.session_id, Role.RECEIVER, peer):
            # (the miss limit first, as the join's own check does; a rare path: its own call)
            limited = carried is None and state.miss_limiter.exceeded(peer.ip)
            joined: SessionRecord | JoinRefused | None = JoinRefused(
                TOO_MANY_MISSES if limited else relay.SESSION_FULL
            )
        else:
            try:
                joined = _take_slot(state, peer, join, client_type, base_url, text, carried)
            except StoreUnavailable:
                state.router.detach(join.session_id, Role.RECEIVER, peer)
                raise
            if not isinstance(joined, SessionRecord):
                state.router.detach(join.session_id, Role.RECEIVER, peer)
        if joined is None:
            return None  # moved: its sender's worker serves it from the join on
        if isinstance(joined, JoinRefused):
            _refuse_join(state, peer, join.session_id, joined)
            return None
        # a join taken for us elsewhere may have outlived its sender (it left meanwhile)
        gone = joined.receiver_node != state.node or (
            carried is not None
            and joined.sender_node == state.node
            and state.router.local(joined.id, Role.SENDER) is None
        )
        welcome = _welcome(state, joined, base_url, joined.sender_client_type)
        sent = peer.send(Envelope.build(SignalType.WELCOME, welcome))
    if gone:
        state.router.detach(joined.id, Role.RECEIVER, peer)
        state.metrics.session_paired()
        _ended(state, joined.id, Role.SENDER)
        peer.send_text(PEER_LEFT)
        peer.close(CLOSE_GOING_AWAY, "session ended")
        return None
    if not sent:
        state.router.detach(joined.id, Role.RECEIVER, peer)
        end_session(state, joined.id, leaver=Role.RECEIVER)
        return None
    state.router.paired(joined, Envelope.build(SignalType.PEER_JOINED, PeerJoined(client_type)).to_json())
    state.metrics.session_paired()
    logsink.info(log, "peer connected session=%s role=receiver client=%s", redact(joined.id), client_type)
    return Link(joined, Role.RECEIVER, peer.ip, state.config.turn_available)


def _take_slot(
    state: ServerState,
    peer: Peer,
    join: Join,
    client_type: str,
    base_url: str | None,
    text: str | None,
    carried: SessionRecord | None,
) -> SessionRecord | JoinRefused | None:
    """The receiver slot, for this worker (attached, under our write lock). One store call:
    a join that may name the sender's node instead (a neighbour), which then serves the
    connection (None: moved); if it cannot be moved after all, or an offer comes back, the
    record is rehomed here (a record naming another node: the session ended meanwhile)."""
    if carried is None:
        handoff = state.handoff if text is not None else None
        follow = handoff is not None and handoff.can_move(peer)
        joined = state.store.join(
            join.session_id,
            version=join.version,
            client_type=client_type,
            node=state.node,
            follow=follow,
            misses=(state.miss_limiter, peer.ip),
        )
        if isinstance(joined, JoinRefused) or joined.receiver_node == state.node:
            return joined
        assert handoff is not None
        assert text is not None
        if handoff.offer(peer, text, joined, base_url):
            return None
        carried = joined
    if carried.receiver_node == state.node:
        return carried
    return state.store.rehome(carried.id, state.node) or carried


def _ended(state: ServerState, session_id: str, leaver: Role) -> None:
    """End a session joined for a receiver we do not serve after all; StoreUnavailable
    leaves it to the reaper."""
    try:
        end_session(state, session_id, leaver=leaver)
    except StoreUnavailable as exc:
        log.warning("session left to the reaper: %s", exc)


def _refuse_join(state: ServerState, peer: Peer, session_id: str, refused: JoinRefused) -> None:
    code = refused.refusal.code
    state.metrics.refused(code)
    if code is ErrorCode.SESSION_NOT_FOUND:
        state.miss_limiter.hit(peer.ip)  # failed guesses back off (S1)
    if refused.notify_sender:
        # ours: the sender hears about it, non-fatally; its session stays open (W-6)
        record = state.store.get(session_id)
        if record is not None:
            notice = Notice(ErrorCode.PEER_VERSION_MISMATCH, refused.refusal.message)
            state.router.send(record, Role.SENDER, Envelope.build(SignalType.NOTICE, notice).to_json())
    peer.fail(code, refused.refusal.message)

"""The in-process `Router`: (session, role) -> the local connection holding it.

Delivery is a direct write on the target connection (its own lock serialises writers), so
messages from one sender keep their order. `server.redis_router.RedisRouter` extends this
with delivery to connections held by other nodes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from server.store import Pairing, SessionRecord
from sp2p.proto.constants import Role

if TYPE_CHECKING:
    from server.connection import Peer


class LocalRouter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peers: dict[tuple[str, Role], Peer] = {}
        #: session id -> the join's facts for our sender's handler (take_pairing)
        self._pairings: dict[str, Pairing] = {}

    def attach(self, session_id: str, role: Role, peer: Peer) -> bool:
        with self._lock:
            if (session_id, role) in self._peers:
                return False
            self._peers[(session_id, role)] = peer
            return True

    def detach(self, session_id: str, role: Role, peer: Peer) -> bool:
        with self._lock:
            if role is Role.SENDER:
                self._pairings.pop(session_id, None)
            if self._peers.get((session_id, role)) is peer:
                del self._peers[(session_id, role)]
                return True
            return False

    def local(self, session_id: str, role: Role) -> Peer | None:
        # one dict lookup is atomic (GIL, and greenlets switch only on I/O): the lock only
        # guards attach/detach's check-then-change
        return self._peers.get((session_id, role))

    def local_sessions(self) -> list[tuple[str, Role, Peer]]:
        with self._lock:
            return [(sid, role, peer) for (sid, role), peer in self._peers.items()]

    def send(self, record: SessionRecord, role: Role, text: str) -> None:
        peer = self.local(record.id, role)
        if peer is not None:
            peer.send_text(text)

    def close(self, record: SessionRecord, role: Role, code: int, reason: str) -> None:
        self._close_local(record.id, role, code, reason)

    def _close_local(self, session_id: str, role: Role, code: int, reason: str) -> None:
        # only a teardown closes through the router, after the store ended the session: the
        # peer leaves the map here, so its handler's own detach tells it the end is done
        # (and skips a second store.end)
        with self._lock:
            peer = self._peers.pop((session_id, role), None)
            if role is Role.SENDER:
                self._pairings.pop(session_id, None)
        if peer is not None:
            peer.close(code, reason)

    def paired(self, record: SessionRecord, text: str) -> None:
        self._paired_local(record.id, Pairing.of(record), text)

    def _paired_local(self, session_id: str, pairing: Pairing, text: str) -> None:
        with self._lock:
            peer = self._peers.get((session_id, Role.SENDER))
            if peer is not None:  # noted before the text goes out: the answer may follow at once
                self._pairings[session_id] = pairing
        if peer is not None:
            peer.hurry()  # its receiver waits on it now
            peer.send_text(text)

    def take_pairing(self, session_id: str) -> Pairing | None:
        with self._lock:
            return self._pairings.pop(session_id, None)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

"""The two seams between a node's connections and the service's shared state.

`SessionStore` holds session records and the counters every node must agree on (per-IP
caps, rate-limit windows, TURN budgets). `Router` delivers a signalling message, or a
close, to the connection holding (session, role), wherever it lives. In-memory versions
(server.sessions, server.router) serve one process with no external service; the Redis
versions (server.redis_store) let workers and hosts form one service.

Records are plain values: the store never holds a connection, so a handler asks the store
(atomically) and then tells the router what to deliver, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from server.relay import Refusal
from sp2p.proto.constants import Role
from sp2p.proto.signal import session_id_from_random

if TYPE_CHECKING:
    from server.connection import Peer


class SharedCounters(Protocol):
    """The stats.json totals (server.stats): the store counts them in the same atomic step
    as the change they count (create, join, mark_completed), so with Redis a count costs
    no round trip of its own and a transfer is never counted twice."""

    def totals(self) -> dict[str, int]: ...

    def seed(self, values: dict[str, int]) -> None:
        """Set the fields that do not exist yet (the first process to start wins)."""
        ...


def candidate_ids(random_bytes: Callable[[int], bytes]) -> Iterator[str]:
    """Fresh session ids for a store to try in turn until one is free; collisions are
    astronomically rare, so the loop is bounded (a store that runs out refuses)."""
    for _ in range(100):
        candidate = session_id_from_random(random_bytes(32))
        if candidate is not None:
            yield candidate


class StoreUnavailable(Exception):
    """The shared store cannot be reached; the message says why, in one line."""


@dataclass(frozen=True)
class SessionRecord:
    id: str
    version: int
    sender_ip: str
    sender_client_type: str
    #: wall-clock seconds (nodes share them)
    created: float
    last_seen: float
    joined_at: float | None = None
    receiver_client_type: str = ""
    file_info: str | None = None
    completed: bool = False
    #: the node (process) holding each side's connection
    sender_node: str = ""
    receiver_node: str = ""

    @property
    def joined(self) -> bool:
        return self.joined_at is not None

    def node_of(self, role: Role) -> str:
        return self.sender_node if role is Role.SENDER else self.receiver_node

    @classmethod
    def opened(cls, session_id: str, *, version: int, ip: str, client_type: str, node: str,
               now: float) -> SessionRecord:
        """A session a sender has just opened (both stores build it the same way)."""
        return cls(id=session_id, version=version, sender_ip=ip, sender_client_type=client_type,
                   created=now, last_seen=now, sender_node=node)


@dataclass(frozen=True)
class Pairing:
    """What a sender's handler learns with `peer-joined` (the router hands it over), so its
    next message needs no store read to see the receiver."""

    joined_at: float
    receiver_node: str
    receiver_client_type: str

    @classmethod
    def of(cls, record: SessionRecord) -> Pairing:
        return cls(record.joined_at or 0.0, record.receiver_node, record.receiver_client_type)

    def applied_to(self, record: SessionRecord) -> SessionRecord:
        return replace(record, joined_at=self.joined_at, receiver_node=self.receiver_node,
                       receiver_client_type=self.receiver_client_type)  # fmt: skip


@dataclass(frozen=True)
class JoinRefused:
    refusal: Refusal
    #: the sender should hear about it (a receiver with the wrong version, W-6)
    notify_sender: bool = False


class Limiter(Protocol):
    """At most `limit` events per key per window (0 = unlimited)."""

    @property
    def enabled(self) -> bool: ...

    def hit(self, key: str) -> bool:
        """Count one event; False when the key is over its limit."""
        ...

    def exceeded(self, key: str) -> bool:
        """True while the key is over its limit (without counting)."""
        ...

    def store_check(self, key: str) -> tuple[str, int] | None:
        """(the store's counter for `key`, the limit) when a store script can check the
        limit itself, in the same round trip as its own work; None: call `exceeded()`."""
        ...


#: a limiter and the key a join is refused for while it is over its limit (the miss limit)
MissGate = tuple[Limiter, str]


class SessionStore(Protocol):
    def create(self, ip: str, *, version: int, client_type: str, node: str) -> SessionRecord | Refusal:
        """A new session for a sender at `ip`; the global cap is checked before the per-IP one."""
        ...

    def join(
        self,
        session_id: str,
        *,
        version: int,
        client_type: str,
        node: str,
        follow: bool = False,
        misses: MissGate | None = None,
    ) -> SessionRecord | JoinRefused:
        """Take the receiver slot (the version is compared before the slot is taken) for
        `node`; with `follow`, for the sender's node instead if that is a neighbour (with
        Redis: same host, namespace and uid), which the caller then hands the connection to
        (server.handoff), or, failing that, `rehome`s it. `misses`: refused first if that
        limiter's key is over its limit (with Redis: in the same round trip)."""
        ...

    def rehome(self, session_id: str, node: str) -> SessionRecord | None:
        """A joined session's receiver is served by `node` after all; None if it ended."""
        ...

    def get(self, session_id: str) -> SessionRecord | None: ...

    def touch(self, session_id: str) -> bool:
        """Note activity; False if the session is gone (e.g. lost with a restarted store)."""
        ...

    def touch_all(self, session_ids: Collection[str]) -> set[str]:
        """`touch` for many sessions at once (the reaper's pass); returns the ids gone."""
        ...

    def set_file_info(self, session_id: str, data: str) -> bool:
        """Store the preview blob once; later ones are refused."""
        ...

    def mark_completed(self, session_id: str, nbytes: int) -> bool:
        """True only for the first call (both peers may report the same transfer), which
        also counts the transfer and its bytes."""
        ...

    def end(self, session_id: str) -> SessionRecord | None:
        """Remove the session; its record only for the call that actually ended it."""
        ...

    def end_many(self, session_ids: Sequence[str], *, background: bool = False) -> list[SessionRecord | None]:
        """`end` for each, in order (with Redis: one pipeline). `background`: nobody waits
        for these (with Redis: they go on the connection for background work)."""
        ...

    def expired(self, *, idle: float, max_age: float) -> list[str]:
        """Ids of sessions past their idle or age limit (not ended; the caller ends them)."""
        ...

    def count(self) -> int: ...

    def count_for_ip(self, ip: str) -> int: ...

    def limiter(self, name: str, limit: int, window: float) -> Limiter: ...

    def counters(self) -> SharedCounters:
        """The stats.json totals: attempted (create), connected (join), completed and bytes
        (mark_completed)."""
        ...

    def health(self) -> str | None:
        """None when usable, else the reason in one line."""
        ...

    def close(self) -> None: ...

    # -- nodes (no-ops for a store that lives in one process) ----------------------------
    def heartbeat(self, node: str) -> None: ...

    def dead_nodes(self, me: str) -> list[str]:
        """Nodes whose heartbeat expired, each handed to exactly one surviving caller."""
        ...

    def sessions_of(self, node: str) -> list[str]: ...

    def forget_node(self, node: str) -> None: ...


class Router(Protocol):
    def attach(self, session_id: str, role: Role, peer: Peer) -> bool:
        """Register a local connection; False if (session, role) is already held here."""
        ...

    def detach(self, session_id: str, role: Role, peer: Peer) -> bool:
        """Unregister; False if it was not registered (any more): a teardown closed it."""
        ...

    def local(self, session_id: str, role: Role) -> Peer | None: ...

    def local_sessions(self) -> list[tuple[str, Role, Peer]]: ...

    def send(self, record: SessionRecord, role: Role, text: str) -> None:
        """Deliver `text` to (session, role), in order per sender, wherever it is held."""
        ...

    def close(self, record: SessionRecord, role: Role, code: int, reason: str) -> None:
        """Close (session, role) wherever it is held; only after the store ended the session."""
        ...

    def paired(self, record: SessionRecord, text: str) -> None:
        """Deliver `text` (peer-joined) to the sender of the joined `record`, wherever it is
        held, with the join's facts for `take_pairing`."""
        ...

    def take_pairing(self, session_id: str) -> Pairing | None:
        """The join's facts delivered to our sender of `session_id` (once), if any."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

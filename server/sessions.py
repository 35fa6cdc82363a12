"""The in-memory session registry: one sender and at most one receiver per session id.

Thread-safe: one lock guards the id map and the per-IP counters. The registry never calls
into a connection while holding its lock; methods return what the caller must notify or
close, so connection I/O (which may block for the write timeout) happens outside the lock.
Ending a session is idempotent, so either peer's handler and the reaper may all try.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from server.relay import JoinCheck, Refusal, check_join
from sp2p.proto.constants import Role
from sp2p.proto.signal import ErrorCode, session_id_from_random

Clock = Callable[[], float]


class PeerLink(Protocol):
    """What the registry needs to know about a connection."""

    ip: str
    #: monotonic time of the last bytes received (messages, pings, pongs)
    last_activity: float


@dataclass(eq=False)
class Session:
    id: str
    sender: PeerLink
    sender_ip: str
    version: int
    sender_client_type: str
    created: float
    last_seen: float
    receiver: PeerLink | None = None
    receiver_client_type: str = ""
    joined_at: float | None = None
    file_info: str | None = None
    completed: bool = False
    ended: bool = False
    #: relay-retry answers and relayed candidates, per role
    turn_answers: dict[Role, int] = field(default_factory=dict)
    candidates: dict[Role, int] = field(default_factory=dict)
    #: the credentials handed out, per role (repeated requests get the same ones)
    turn_cache: dict[Role, str] = field(default_factory=dict)

    def peer(self, role: Role) -> PeerLink | None:
        return self.sender if role is Role.SENDER else self.receiver

    def other(self, role: Role) -> PeerLink | None:
        return self.receiver if role is Role.SENDER else self.sender

    def idle_since(self) -> float:
        """Last sign of life from either side: a message, or any frame (pings/pongs too)."""
        latest = max(self.last_seen, self.sender.last_activity)
        if self.receiver is not None:
            latest = max(latest, self.receiver.last_activity)
        return latest


@dataclass(frozen=True)
class JoinRefused:
    refusal: Refusal
    #: set when the sender should hear about it (a receiver with the wrong version)
    notify_sender: PeerLink | None = None


class SessionRegistry:
    def __init__(
        self,
        *,
        max_sessions: int,
        max_sessions_per_ip: int,
        clock: Clock = time.monotonic,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._max = max_sessions
        self._max_per_ip = max_sessions_per_ip
        self._clock = clock
        self._random = random_bytes
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._per_ip: dict[str, int] = {}

    # -- queries ----------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def count_for_ip(self, ip: str) -> int:
        with self._lock:
            return self._per_ip.get(ip, 0)

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def file_info(self, session_id: str) -> str | None:
        with self._lock:
            session = self._sessions.get(session_id)
            return session.file_info if session is not None else None

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    # -- lifecycle --------------------------------------------------------------------
    def create(self, sender: PeerLink, *, version: int, client_type: str) -> Session | Refusal:
        """Register a new session for `sender`; the global cap is checked before the
        per-IP cap, as upstream does."""
        with self._lock:
            if len(self._sessions) >= self._max:
                return Refusal(ErrorCode.SERVER_BUSY, "server is at capacity, try again later")
            if self._per_ip.get(sender.ip, 0) >= self._max_per_ip:
                return Refusal(ErrorCode.RATE_LIMITED, "too many active sessions from this IP")
            session_id = self._new_id()
            if session_id is None:
                return Refusal(ErrorCode.INTERNAL_ERROR, "failed to create session")
            now = self._clock()
            session = Session(
                id=session_id,
                sender=sender,
                sender_ip=sender.ip,
                version=version,
                sender_client_type=client_type,
                created=now,
                last_seen=now,
            )
            self._sessions[session_id] = session
            self._per_ip[sender.ip] = self._per_ip.get(sender.ip, 0) + 1
            return session

    def _new_id(self) -> str | None:
        for _ in range(100):  # collisions are astronomically rare; bound the loop anyway
            candidate = session_id_from_random(self._random(32))
            if candidate is not None and candidate not in self._sessions:
                return candidate
        return None

    def join(
        self, session_id: str, receiver: PeerLink, *, version: int, client_type: str
    ) -> Session | JoinRefused:
        """Attach `receiver`. The version is compared *before* attaching, so a receiver
        with the wrong version never occupies the slot (upstream W-6)."""
        with self._lock:
            session = self._sessions.get(session_id)
            verdict = check_join(
                exists=session is not None and not session.ended,
                has_receiver=session is not None and session.receiver is not None,
                sender_version=session.version if session is not None else 0,
                receiver_version=version,
            )
            if isinstance(verdict, Refusal):
                notify = None
                if session is not None and verdict.code is ErrorCode.VERSION_MISMATCH:
                    notify = session.sender
                return JoinRefused(verdict, notify)
            assert session is not None
            assert verdict is JoinCheck.OK
            now = self._clock()
            session.receiver = receiver
            session.receiver_client_type = client_type
            session.joined_at = now
            session.last_seen = now
            return session

    def touch(self, session: Session) -> None:
        session.last_seen = self._clock()  # a float store is atomic; no lock needed

    def set_file_info(self, session: Session, data: str) -> bool:
        """Store the sender's preview blob once (later ones are ignored)."""
        with self._lock:
            if session.ended or session.file_info is not None:
                return False
            session.file_info = data
            return True

    def mark_completed(self, session: Session) -> bool:
        """Record the transfer as done; True only for the first call, so a
        `transfer-complete` from both peers at once is counted once."""
        with self._lock:
            if session.completed:
                return False
            session.completed = True
            return True

    def end(self, session: Session) -> bool:
        """Remove the session. True only for the call that actually ended it."""
        with self._lock:
            if session.ended:
                return False
            session.ended = True
            if self._sessions.get(session.id) is session:
                del self._sessions[session.id]
            left = self._per_ip.get(session.sender_ip, 0) - 1
            if left > 0:
                self._per_ip[session.sender_ip] = left
            else:
                self._per_ip.pop(session.sender_ip, None)
            return True

    def expired(self, *, idle: float, max_age: float) -> list[Session]:
        """Sessions past their idle or age limit (not yet ended; the caller ends them)."""
        now = self._clock()
        with self._lock:
            return [
                s for s in self._sessions.values() if now - s.created > max_age or now - s.idle_since() > idle
            ]

"""The in-memory `SessionStore`: one process, no external service (the default).

Thread- and greenlet-safe: one lock guards the id map and the per-IP counters. Records are
immutable values; an update replaces the record. Ending a session is idempotent, so either
peer's handler and the reaper may all try.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence

from server.ratelimit import FixedWindowLimiter
from server.relay import JoinCheck, Refusal, check_join
from server.stats import ATTEMPTED, BYTES, COMPLETED, CONNECTED, MemoryCounters
from server.store import JoinRefused, Limiter, MissGate, SessionRecord, candidate_ids
from sp2p.proto.signal import ErrorCode

Clock = Callable[[], float]

AT_CAPACITY = Refusal(ErrorCode.SERVER_BUSY, "server is at capacity, try again later")
TOO_MANY_FROM_IP = Refusal(ErrorCode.RATE_LIMITED, "too many active sessions from this IP")
NO_ID = Refusal(ErrorCode.INTERNAL_ERROR, "failed to create session")
#: a join from an IP over the miss limit (failed joins and file-info misses, S1)
TOO_MANY_MISSES = Refusal(ErrorCode.RATE_LIMITED, "too many failed attempts, try again later")


class MemoryStore:
    def __init__(
        self,
        *,
        max_sessions: int,
        max_sessions_per_ip: int,
        clock: Clock = time.time,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._max = max_sessions
        self._max_per_ip = max_sessions_per_ip
        self._clock = clock
        self._random = random_bytes
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}
        self._per_ip: dict[str, int] = {}
        self._counters = MemoryCounters()

    # -- queries ----------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def count_for_ip(self, ip: str) -> int:
        with self._lock:
            return self._per_ip.get(ip, 0)

    def get(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            return self._sessions.get(session_id)

    def health(self) -> str | None:
        return None

    def counters(self) -> MemoryCounters:
        return self._counters

    def limiter(self, name: str, limit: int, window: float) -> Limiter:
        return FixedWindowLimiter(limit, window)

    # -- lifecycle --------------------------------------------------------------------
    def create(self, ip: str, *, version: int, client_type: str, node: str) -> SessionRecord | Refusal:
        with self._lock:
            if len(self._sessions) >= self._max:
                return AT_CAPACITY
            if self._per_ip.get(ip, 0) >= self._max_per_ip:
                return TOO_MANY_FROM_IP
            session_id = next((c for c in candidate_ids(self._random) if c not in self._sessions), None)
            if session_id is None:
                return NO_ID
            now = self._clock()
            record = SessionRecord.opened(
                session_id, version=version, ip=ip, client_type=client_type, node=node, now=now
            )
            self._sessions[session_id] = record
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            self._counters.incr(ATTEMPTED)
            return record

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
        # one process: the sender is never a neighbour's (`follow` changes nothing)
        if misses is not None and misses[0].exceeded(misses[1]):
            return JoinRefused(TOO_MANY_MISSES)
        with self._lock:
            record = self._sessions.get(session_id)
            verdict = check_join(
                exists=record is not None,
                has_receiver=record is not None and record.joined,
                sender_version=record.version if record is not None else 0,
                receiver_version=version,
            )
            if isinstance(verdict, Refusal):
                return JoinRefused(verdict, record is not None and verdict.code is ErrorCode.VERSION_MISMATCH)
            assert record is not None
            assert verdict is JoinCheck.OK
            now = self._clock()
            record = dataclasses.replace(
                record, receiver_client_type=client_type, joined_at=now, last_seen=now, receiver_node=node
            )
            self._sessions[session_id] = record
            self._counters.incr(CONNECTED)
            return record

    def rehome(self, session_id: str, node: str) -> SessionRecord | None:
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None or not record.joined:
                return None
            record = self._sessions[session_id] = dataclasses.replace(record, receiver_node=node)
            return record

    def _update(self, session_id: str, **changes: object) -> bool:
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None:
                return False
            self._sessions[session_id] = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
            return True

    def touch(self, session_id: str) -> bool:
        return self._update(session_id, last_seen=self._clock())

    def touch_all(self, session_ids: Collection[str]) -> set[str]:
        return {sid for sid in session_ids if not self.touch(sid)}

    def set_file_info(self, session_id: str, data: str) -> bool:
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None or record.file_info is not None:
                return False
            self._sessions[session_id] = dataclasses.replace(record, file_info=data)
            return True

    def mark_completed(self, session_id: str, nbytes: int) -> bool:
        with self._lock:
            record = self._sessions.get(session_id)
            if record is None or record.completed:
                return False
            self._sessions[session_id] = dataclasses.replace(record, completed=True)
            self._counters.incr(COMPLETED)
            self._counters.incr(BYTES, nbytes)
            return True

    def end(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            record = self._sessions.pop(session_id, None)
            if record is None:
                return None
            left = self._per_ip.get(record.sender_ip, 0) - 1
            if left > 0:
                self._per_ip[record.sender_ip] = left
            else:
                self._per_ip.pop(record.sender_ip, None)
            return record

    def end_many(self, session_ids: Sequence[str], *, background: bool = False) -> list[SessionRecord | None]:
        return [self.end(session_id) for session_id in session_ids]

    def expired(self, *, idle: float, max_age: float) -> list[str]:
        now = self._clock()
        with self._lock:
            return [
                s.id for s in self._sessions.values() if now - s.created > max_age or now - s.last_seen > idle
            ]

    def close(self) -> None:
        pass

    # one process: no other nodes to watch
    def heartbeat(self, node: str) -> None:
        pass

    def dead_nodes(self, me: str) -> list[str]:
        return []

    def sessions_of(self, node: str) -> list[str]:
        return []

    def forget_node(self, node: str) -> None:
        pass

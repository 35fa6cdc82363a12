"""The Redis store, limiter and counters behind server/store.py's seams: any number of
workers and hosts form one service. The key layout and the Lua scripts each check-and-change
runs are in server.redis_scripts; every script call goes through a `Batched` runner on a
dedicated connection (server.redis_wire), so calls made at the same moment share a write.

Two runners, two connections: one for what someone waits on (create, join, the sender-node
lookup, a transfer's facts, an urgent teardown) and one for background work (a teardown
slice nobody waits on, the reaper's touches). On one, a new hello's create queued behind a
slice of 64 end scripts; while that slice's answer was awaited, the worker wound down
thousands of closed connections (1,920 and 2,560 of 4,000 in two traced runs: the create took
0.1-0.4 s), so the welcome came after most of them.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from functools import partial
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from server import redis_scripts as scripts
from server.handoff_wire import neighbourhood
from server.ratelimit import WindowLimiter
from server.redis_batch import Batched
from server.redis_wire import Wire
from server.relay import SESSION_FULL, SESSION_NOT_FOUND, VERSION_MISMATCH, Refusal
from server.sessions import AT_CAPACITY, NO_ID, TOO_MANY_FROM_IP, TOO_MANY_MISSES
from server.stats import ATTEMPTED, BYTES, COMPLETED, CONNECTED
from server.store import JoinRefused, MissGate, SessionRecord, StoreUnavailable, candidate_ids

log = logging.getLogger("sp2p.server")

#: a node is dead once its heartbeat key expired (it beats every second, server.state)
HEARTBEAT_TTL_MS = 6000

#: sessions touched per script call: one round trip for a reaper pass over thousands of
#: idle senders (a call each had been 12,500 round trips per worker every pass), short
#: enough that Redis serves others in between
TOUCH_BATCH = 1000


#: one script call: the script, its keys, its arguments
ScriptCall = tuple[Script, Sequence[str], Sequence[str | int]]


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Any Redis failure becomes StoreUnavailable with a one-line reason."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"redis unreachable: {exc}") from None


class RedisLimiter(WindowLimiter):
    """Fixed windows counted in Redis, so a limit holds across nodes. When Redis is down
    the limiter lets events through (new sessions are refused anyway)."""

    def __init__(self, client: redis.Redis, key: str, limit: int, window: float) -> None:
        super().__init__(limit)
        self._r = client
        self._key = key
        self._window_ms = int(window * 1000)
        self._hit = client.register_script(scripts.HIT)

    def key_for(self, key: str) -> str:
        """The Redis key counting `key`'s window (the join script reads it)."""
        return f"{self._key}:{key}"

    def store_check(self, key: str) -> tuple[str, int] | None:
        return (self.key_for(key), self._limit) if self.enabled else None

    def _count(self, key: str) -> int:
        try:
            return int(self._hit(keys=[self.key_for(key)], args=[self._window_ms]))
        except redis.RedisError:
            return 0

    def _current(self, key: str) -> int:
        try:
            return int(self._r.get(self.key_for(key)) or 0)
        except redis.RedisError:
            return 0


class RedisCounters:
    """The stats.json totals, shared by every worker and node (server.stats); the session
    scripts count into them."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._r = client
        self._key = key

    def totals(self) -> dict[str, int]:
        with _guard():
            return {str(k): int(v) for k, v in self._r.hgetall(self._key).items()}

    def seed(self, values: dict[str, int]) -> None:
        with _guard():
            for key, value in values.items():
                self._r.hsetnx(self._key, key, value)


class RedisStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        max_sessions: int,
        max_sessions_per_ip: int,
        record_ttl: float = 7200.0,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.r = client
        self.prefix = prefix
        self._max = max_sessions
        self._max_per_ip = max_sessions_per_ip
        self._ttl_ms = int(record_ttl * 1000)
        self._clock = clock
        self._random = random_bytes
        self._create = client.register_script(scripts.CREATE)
        self._join = client.register_script(scripts.JOIN)
        self._end = client.register_script(scripts.END)
        self._set_once = client.register_script(scripts.SET_ONCE)
        self._touch = client.register_script(scripts.TOUCH)
        self._complete = client.register_script(scripts.COMPLETE)
        self._rehome = client.register_script(scripts.REHOME)
        #: written into every record we create: a joining worker with the same one may hand
        #: its receiver to the sender's node (server.handoff)
        self.neighbourhood = neighbourhood()
        #: script calls made at the same moment share one pipeline (a mass disconnect ends
        #: thousands of sessions in a few turns of the loop); background work has its own
        #: runner and connection, so nobody waiting for an answer queues behind it
        self._wire = Wire(client)
        self._calls: Batched[ScriptCall, Any] = Batched(partial(self._run_scripts, self._wire))
        self._bulk_wire = Wire(client)
        self._bulk: Batched[ScriptCall, Any] = Batched(partial(self._run_scripts, self._bulk_wire))
        #: set by RedisRouter while its subscription is broken
        self.subscription_problem: str | None = None

    def _script(
        self, script: Script, keys: Sequence[str], args: Sequence[str | int], *, background: bool = False
    ) -> Any:
        answer = (self._bulk if background else self._calls).call((script, keys, args))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _run_scripts(self, wire: Wire, calls: Sequence[ScriptCall]) -> list[Any]:
        """Answers (or the error of each call) in order; one round trip for the lot, on one
        of the store's own connections (its Batched lets one caller at a time in)."""
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]
        answers = wire.run(commands)
        for i, answer in enumerate(answers):
            if isinstance(answer, NoScriptError):  # Redis restarted: the call loads it again
                script, keys, args = calls[i]
                answers[i] = script(keys=keys, args=args)
        return answers

    @classmethod
    def from_url(cls, url: str, *, prefix: str, **kwargs: Any) -> RedisStore:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=3.0, socket_connect_timeout=3.0
        )
        return cls(client, prefix=prefix, **kwargs)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- SessionStore ----------------------------------------------------------------
    def create(self, ip: str, *, version: int, client_type: str, node: str) -> SessionRecord | Refusal:
        now = self._clock()
        with _guard():
            for session_id in candidate_ids(self._random):
                keys = [self._k("born"), self._k("ip", ip), self._k("s", session_id)]
                keys += [self._k("seen"), self._k("ns", node), self._k("stats")]
                args: list[str | int] = [self._max, self._max_per_ip, version, ip, client_type]
                args += [repr(now), node, self._ttl_ms, session_id, ATTEMPTED, self.neighbourhood]
                answer = self._script(self._create, keys, args)
                if answer == "busy":
                    return AT_CAPACITY
                if answer == "ip":
                    return TOO_MANY_FROM_IP
                if answer == "ok":
                    return SessionRecord.opened(
                        session_id, version=version, ip=ip, client_type=client_type, node=node, now=now
                    )
        return NO_ID

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
        now = self._clock()
        keys = [self._k("s", session_id), self._k("seen"), self._k("ns", node), self._k("stats")]
        args: list[str | int] = [version, client_type, repr(now), node, session_id, CONNECTED]
        args += [self.neighbourhood, self.prefix] if follow else ["", ""]
        if misses is not None:
            limiter, key = misses
            check = limiter.store_check(key)
            if check is not None:
                args += check
            elif limiter.exceeded(key):
                return JoinRefused(TOO_MANY_MISSES)
        with _guard():
            answer = self._script(self._join, keys, args)
        if answer == "limited":
            return JoinRefused(TOO_MANY_MISSES)
        if answer == "missing":
            return JoinRefused(SESSION_NOT_FOUND)
        if answer == "full":
            return JoinRefused(SESSION_FULL)
        if answer == "version":
            return JoinRefused(VERSION_MISMATCH, notify_sender=True)
        return scripts.decode_record(answer, session_id)

    def rehome(self, session_id: str, node: str) -> SessionRecord | None:
        with _guard():
            keys = [self._k("s", session_id), self._k("ns", node)]
            answer = self._script(self._rehome, keys, [node, session_id])
        return scripts.decode_record(answer, session_id) if answer else None

    def get(self, session_id: str) -> SessionRecord | None:
        with _guard():
            fields = self.r.hgetall(self._k("s", session_id))
        return scripts.record_of({str(k): str(v) for k, v in fields.items()}, session_id) if fields else None

    def touch(self, session_id: str) -> bool:
        return not self._touch_all([session_id], background=False)

    def touch_all(self, session_ids: Collection[str]) -> set[str]:
        return self._touch_all(list(session_ids), background=True)  # the reaper's pass

    def _touch_all(self, ids: list[str], *, background: bool) -> set[str]:
        gone: set[str] = set()
        with _guard():
            for at in range(0, len(ids), TOUCH_BATCH):
                args = [repr(self._clock()), self._k("s", ""), *ids[at : at + TOUCH_BATCH]]
                answer = self._script(self._touch, [self._k("seen")], args, background=background)
                gone.update(str(sid) for sid in answer)
        return gone

    def set_file_info(self, session_id: str, data: str) -> bool:
        with _guard():
            return bool(self._script(self._set_once, [self._k("s", session_id)], ["fi", data]))

    def mark_completed(self, session_id: str, nbytes: int) -> bool:
        keys = [self._k("s", session_id), self._k("stats")]
        with _guard():
            return bool(self._script(self._complete, keys, [COMPLETED, BYTES, nbytes]))

    def _end_call(self, session_id: str) -> ScriptCall:
        keys = [self._k("s", session_id), self._k("born"), self._k("seen")]
        return (self._end, keys, [session_id, self.prefix])

    def end(self, session_id: str) -> SessionRecord | None:
        with _guard():
            answer = self._script(*self._end_call(session_id))
        return scripts.decode_record(answer, session_id) if answer else None

    def end_many(self, session_ids: Sequence[str], *, background: bool = False) -> list[SessionRecord | None]:
        with _guard():
            runner = self._bulk if background else self._calls
            answers = runner.call_many([self._end_call(sid) for sid in session_ids])
        for answer in answers:
            if isinstance(answer, Exception):
                raise StoreUnavailable(f"redis: {answer}")
        return [
            scripts.decode_record(a, sid) if a else None for sid, a in zip(session_ids, answers, strict=True)
        ]

    def expired(self, *, idle: float, max_age: float) -> list[str]:
        now = self._clock()
        with _guard():
            idle_ids = self.r.zrangebyscore(self._k("seen"), "-inf", repr(now - idle))
            old_ids = self.r.zrangebyscore(self._k("born"), "-inf", repr(now - max_age))
        return list(dict.fromkeys([*old_ids, *idle_ids]))

    def count(self) -> int:
        with _guard():
            return int(self.r.zcard(self._k("born")))

    def count_for_ip(self, ip: str) -> int:
        with _guard():
            return int(self.r.get(self._k("ip", ip)) or 0)

    def limiter(self, name: str, limit: int, window: float) -> RedisLimiter:
        return RedisLimiter(self.r, self._k("rl", name), limit, window)

    def health(self) -> str | None:
        try:
            self.r.ping()
        except redis.RedisError as exc:
            return f"redis unreachable: {exc}"
        return self.subscription_problem

    def close(self) -> None:
        self._wire.close()
        self._bulk_wire.close()
        self.r.close()

    def counters(self) -> RedisCounters:
        return RedisCounters(self.r, self._k("stats"))

    # -- nodes -------------------------------------------------------------------------
    def heartbeat(self, node: str) -> None:
        with _guard():
            pipe = self.r.pipeline(transaction=False)
            pipe.set(self._k("hb", node), "1", px=HEARTBEAT_TTL_MS)
            pipe.sadd(self._k("nodes"), node)
            pipe.execute()

    def dead_nodes(self, me: str) -> list[str]:
        """Nodes whose heartbeat expired, each claimed by exactly one surviving node."""
        with _guard():
            nodes = [str(n) for n in self.r.smembers(self._k("nodes")) if n != me]
            if not nodes:
                return []
            alive = self.r.mget([self._k("hb", n) for n in nodes])
            dead = []
            for node, beat in zip(nodes, alive, strict=True):
                if beat is None and self.r.set(self._k("sweep", node), me, nx=True, ex=30):
                    dead.append(node)
            return dead

    def sessions_of(self, node: str) -> list[str]:
        with _guard():
            return sorted(str(sid) for sid in self.r.smembers(self._k("ns", node)))

    def forget_node(self, node: str) -> None:
        with _guard():
            self.r.srem(self._k("nodes"), node)
            # the sweep claim goes too: a node wrongly taken for dead (starved of CPU past the
            # TTL) beats again, and when it really dies its sessions must be swept at once, not
            # after the old claim expires
            self.r.delete(self._k("ns", node), self._k("hb", node), self._k("sweep", node))


def redact_url(url: str) -> str:
    """A Redis URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

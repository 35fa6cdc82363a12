"""Delivery to connections held by other nodes: one pub/sub channel per node.

Messages for another node go to an outbox, and one publisher (a thread, a greenlet under
gevent) sends whatever has gathered in one pipeline: one PUBLISH per target node per
turn, its payload the records of server.redis_frames. Under load a relayed message had cost a
PUBLISH round trip of its own, a quarter of a worker's CPU in sends to Redis (py-spy,
50 concurrent exchanges on 4 workers); batched, the handlers go on at once and a busy
turn's messages share one send. Order per (session, direction) holds: one direction's
messages come from one handler, enter the outbox in order, and the single publisher sends
batches in order on one connection, which Redis serves in order; each node reads its
channel on one connection. While both connections are up nothing is dropped; if a node's
subscription breaks, that node reports Redis as unhealthy and resubscribes.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis

from server import redis_frames as frames
from server.config import ConfigError, ServerConfig
from server.redis_store import RedisStore, redact_url
from server.redis_wire import Subscriber, Wire
from server.router import LocalRouter
from server.store import Pairing, SessionRecord
from server.write_batch import WriteBatch
from sp2p.proto.constants import Role

log = logging.getLogger("sp2p.server")

#: seconds stop() waits for the outbox to drain (closes announced at shutdown)
STOP_FLUSH = 1.0


class RedisRouter(LocalRouter):
    """Local delivery when the target is on this node, else through its node's channel;
    a subscriber delivers what arrives for us."""

    def __init__(self, store: RedisStore, node: str) -> None:
        super().__init__()
        self._store = store
        self._node = node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._subscribed = threading.Event()
        #: target node -> records (server.redis_frames) not yet published, in order
        self._outbox: dict[str, list[str]] = {}
        self._outbox_lock = threading.Lock()
        self._wake = threading.Event()
        #: held while a batch is taken and published, so batches leave in order
        self._flush_lock = threading.Lock()
        #: the publisher's own connection (only a flush, under _flush_lock, uses it)
        self._wire = Wire(store.r)
        #: the listener's current connection (stop() closes it to end a waiting read)
        self._subscriber: Subscriber | None = None
        #: the listener's writes (only its greenlet uses it)
        self._batch = WriteBatch()

    def _channel(self, node: str) -> str:
        return f"{self._store.prefix}:node:{node}"

    def _publish(self, node: str, frame: str) -> None:
        with self._outbox_lock:
            self._outbox.setdefault(node, []).append(frame)
        self._wake.set()

    def send(self, record: SessionRecord, role: Role, text: str) -> None:
        node = record.node_of(role)
        if node in ("", self._node):
            super().send(record, role, text)
        else:
            self._publish(node, frames.text(record.id, role, text))

    def close(self, record: SessionRecord, role: Role, code: int, reason: str) -> None:
        node = record.node_of(role)
        if node in ("", self._node):
            super().close(record, role, code, reason)
        else:
            self._publish(node, frames.close(record.id, role, code, reason))

    def paired(self, record: SessionRecord, text: str) -> None:
        node = record.sender_node
        if node in ("", self._node):
            super().paired(record, text)
        else:
            self._publish(node, frames.paired(record.id, Pairing.of(record), text))

    def flush(self) -> None:
        """Publish everything in the outbox now (one pipeline); a Redis failure drops the
        batch with a warning, as a failed PUBLISH would have."""
        with self._flush_lock:
            with self._outbox_lock:
                batch, self._outbox = self._outbox, {}
            if not batch:
                return
            commands = [
                ("PUBLISH", self._channel(node), frames.payload(records)) for node, records in batch.items()
            ]
            try:
                self._wire.run(commands)
            except redis.RedisError as exc:
                log.warning("%d messages to other nodes dropped: redis unreachable: %s",
                            sum(map(len, batch.values())), exc)

    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a bug must not stop every later delivery to other nodes
                log.exception("publishing to other nodes failed")

    def _deliver(self, raw: str) -> None:
        # what arrived together leaves together: one write per connection, not one per
        # message (a sender's offer, candidates and direct address were 6 sends)
        try:
            with self._batch.holding():
                for frame in frames.decode(raw):
                    self._deliver_one(frame)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed message on our channel")
        finally:
            self._batch.flush()

    def _deliver_one(self, frame: frames.Frame) -> None:
        if frame.pairing is not None:
            self._paired_local(frame.session, frame.pairing, frame.body)
        elif frame.kind == frames.TEXT:
            peer = self.local(frame.session, frame.role)
            if peer is not None:
                peer.send_text(frame.body)
        else:
            self._close_local(frame.session, frame.role, frame.code, frame.body)

    def start(self) -> None:
        if self._thread is None:
            self._publisher = threading.Thread(target=self._publish_loop, name="sp2p-publisher", daemon=True)
            self._publisher.start()
            self._thread = threading.Thread(target=self._listen, name="sp2p-subscriber", daemon=True)
            self._thread.start()
            self._subscribed.wait(5)

    def stop(self) -> None:
        """Publish what is still in the outbox (the closes of a shutdown), then stop."""
        self._stop.set()
        self._wake.set()
        if self._publisher is not None:
            self._publisher.join(STOP_FLUSH)
        self.flush()
        self._wire.close()
        if self._subscriber is not None:
            self._subscriber.close()

    def _listen(self) -> None:
        """Read our channel; on a broken connection mark Redis unhealthy and resubscribe."""
        while not self._stop.is_set():
            subscriber = Subscriber(self._store.r, self._channel(self._node))
            self._subscriber = subscriber
            try:
                if self._stop.is_set():  # stop() came before this connection existed
                    break
                subscriber.subscribe()
                if self._store.subscription_problem is not None:
                    log.info("redis subscription restored")
                self._store.subscription_problem = None
                self._subscribed.set()
                while True:
                    self._deliver(subscriber.next())
            except redis.RedisError as exc:
                if subscriber.closed or self._stop.is_set():
                    break  # shutting down: stop() closed the connection under us
                if self._store.subscription_problem is None:
                    log.warning("redis subscription lost: %s", exc)
                self._store.subscription_problem = f"redis subscription lost: {exc}"
                self._subscribed.set()
                self._stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):
                    subscriber.close()


def _auth_refused(url: str) -> str:
    """One line for Redis's own AUTH/HELLO refusals (~260 characters of protocol advice)."""
    from urllib.parse import parse_qs, urlsplit

    where = f"Redis at {redact_url(url)}"
    parts = urlsplit(url)
    # redis-py sends no password for an empty one (redis://:@host), so Redis asked for one
    if not (parts.password or "".join(parse_qs(parts.query).get("password", []))):
        return f"{where} wants a password (put it in the URL: redis://:PASSWORD@host:port/0)"
    return f"{where} refused the password in the URL (wrong password, or a user name it does not know)"


def connect(config: ServerConfig, node: str, *, check: bool = True) -> tuple[RedisStore, RedisRouter]:
    """Store and router of one node; with `check`, a one-line ConfigError when Redis cannot
    be reached. Workers connect without the check: one booting while Redis is down must
    come up (refusing sessions until it returns), or gunicorn would halt the whole node."""
    try:
        store = RedisStore.from_url(
            config.redis_url,
            prefix=config.redis_prefix,
            max_sessions=config.max_sessions,
            max_sessions_per_ip=config.max_sessions_per_ip,
            record_ttl=config.session_max_age + config.session_idle,
        )
        if check:
            store.r.ping()
    except redis.AuthenticationError:
        raise ConfigError(_auth_refused(config.redis_url)) from None
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"cannot reach Redis at {redact_url(config.redis_url)}: {exc}") from None
    return store, RedisRouter(store, node)

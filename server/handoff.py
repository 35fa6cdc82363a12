"""A receiver's connection moves to the worker holding its sender (same host, Redis store).

With several workers (and nodes) the kernel spreads connections by source address, so a
sender and its receiver usually land on different workers, and every message of their
exchange crossed Redis: handler, outbox, publisher, PUBLISH, the other worker's subscriber,
write; three processes woken per message. Here the worker that reads a receiver's `join`
looks up its sender's node and, if that node is a worker on this host, passes it the TCP
connection itself (SCM_RIGHTS over a Unix socket), with what was already read from it. The
sender's worker then runs the join as if the receiver had connected there: the record
names one node for both roles and the whole exchange is local (LocalRouter delivery).

Each worker listens on an abstract Unix socket named from the Redis prefix and its node id;
abstract names live in one network namespace, so a connect that works means "this host",
and a refused one is remembered for a while (a node on another host). Both ends check the
other's uid (SO_PEERCRED): no other local user can inject connections or take them.

Exactly one worker serves a connection: the taker serves only after the giver's COMMIT
(server.handoff_wire), and the giver sends that and forgets the connection under the
connection's write lock, so nothing it writes (a shutdown's close) can follow. Anything
that fails before (the taker gone, stopped, slow, declining) leaves the giver to go on with
the join itself, as if no handoff had been tried. TLS connections never move (the TLS
state lives in the process), nor do connections under the in-process test server (threads).
"""

from __future__ import annotations

import array
import contextlib
import errno
import hashlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from server import handoff_wire as wire
from server.store import StoreUnavailable
from sp2p.proto.constants import Role

if TYPE_CHECKING:
    from server.connection import Peer
    from server.state import ServerState

log = logging.getLogger("sp2p.server")

#: how long the giver waits for the taker's answer before serving the connection itself
#: (a stopped or swamped worker); the usual answer takes well under a millisecond
ANSWER_WAIT = 0.5
#: how long the taker waits for the giver's COMMIT after answering TAKEN
COMMIT_WAIT = 10.0
#: how long the taker waits for a whole offer once a giver connected
OFFER_WAIT = 2.0
#: how long a node that could not be reached is not tried again (on another host, or gone)
MISS_FOR = 30.0
BACKLOG = 128
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Outcome(StrEnum):
    """How an offer ended (the giver's metrics label)."""

    MOVED = "moved"
    DECLINED = "declined"  #: the taker is stopping or at capacity
    TIMEOUT = "timeout"  #: no answer within ANSWER_WAIT
    GONE = "gone"  #: the taker hung up, or the connection closed meanwhile
    UNREACHABLE = "unreachable"  #: no such socket here (another host) or a foreign owner


Adopt = Callable[[Any, wire.Offer], None]


def address(prefix: str, node: str) -> str:
    """A worker's abstract socket name (the prefix is hashed if long: names are <= 107 bytes)."""
    if len(prefix) > 48:
        prefix = hashlib.sha256(prefix.encode()).hexdigest()[:24]
    return f"\0sp2p-handoff-{prefix}-{node}"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (for a connected client:
    the listener's owner; for an accepted one: the client's)."""
    _pid, uid, _gid = _CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    return int(uid)


class Handoff:
    """One worker's side of the handoff: offering receivers away, and taking them in."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._prefix = state.config.redis_prefix
        self._server: Any = None
        self._adopt: Adopt | None = None
        self._stopping = False
        #: node -> monotonic time until which it is not tried (MISS_FOR)
        self._misses: dict[str, float] = {}

    @property
    def listening(self) -> bool:
        return self._server is not None and not self._stopping

    # -- taking connections in (the sender's worker) ---------------------------------------
    def listen(self, spawn: Any, adopt: Adopt) -> None:
        """Take offers from now on (in a gevent worker): `spawn` runs each giver's greenlet
        (the worker's pool, so adopted connections count as the worker's own), `adopt`
        serves a connection once taken."""
        from gevent.server import StreamServer

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(address(self._prefix, self._state.node))
            sock.listen(BACKLOG)
        except OSError as exc:  # the node still works, pairs just cross Redis
            sock.close()
            log.warning("handoff socket unavailable, receivers will not move here: %s", exc)
            return
        self._adopt = adopt
        self._server = StreamServer(sock, handle=self._take, spawn=spawn)
        self._server.start()

    def stop(self) -> None:
        """Stop taking connections (a stopping worker); offers in flight are declined."""
        self._stopping = True
        if self._server is not None:
            self._server.close()

    def _take(self, conn: socket.socket, _addr: Any) -> None:
        try:
            taken = self._receive(conn)
        finally:
            conn.close()
        if taken is not None:
            assert self._adopt is not None
            self._adopt(*taken)

    def _receive(self, conn: socket.socket) -> tuple[socket.socket, wire.Offer] | None:
        """Read an offer and settle it; the connection and its offer once committed."""
        if peer_uid(conn) != os.geteuid():
            log.warning("handoff: refused a connection from another user")
            return None
        conn.settimeout(OFFER_WAIT)
        try:
            offer, fd = self._read_offer(conn)
        except (OSError, ValueError) as exc:
            log.warning("handoff: bad offer: %s", exc)
            return None
        client = _tcp_socket(fd)
        if client is None:
            log.warning("handoff: an offer without a TCP connection")
            return None
        ip = offer.ip
        if self._stopping or self._state.connections.acquire(ip) is not None:
            with contextlib.suppress(OSError):
                conn.sendall(wire.DECLINED)
            client.close()
            return None
        if self._committed(conn):
            return client, offer
        self._state.connections.release(ip)
        client.close()  # our descriptor only: the giver still serves the connection
        return None

    @staticmethod
    def _read_offer(conn: socket.socket) -> tuple[wire.Offer, int]:
        """The offer and its one descriptor (extra descriptors are closed)."""
        data, fds, _flags, _ = socket.recv_fds(conn, 65536, 4)
        fd = fds[0] if len(fds) == 1 else None
        for extra in fds if fd is None else ():
            os.close(extra)
        if fd is None:
            raise ValueError(f"{len(fds)} descriptors with an offer")
        try:
            while len(data) < wire.LENGTH.size:
                data += _recv_some(conn, wire.LENGTH.size - len(data))
            need = wire.LENGTH.size + wire.body_length(data)
            while len(data) < need:
                data += _recv_some(conn, need - len(data))
            if len(data) != need:
                raise ValueError("bytes after the offer")
            return wire.decode(data[wire.LENGTH.size :]), fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _committed(conn: socket.socket) -> bool:
        """Answer TAKEN, then True once the giver commits. Waiting ends by shutting our
        reading side first: a COMMIT is then either here to be read or refused to the giver
        (EPIPE), never lost between the two."""
        try:
            conn.sendall(wire.TAKEN)
            conn.settimeout(COMMIT_WAIT)
            with contextlib.suppress(TimeoutError):
                return conn.recv(1) == wire.COMMIT
            conn.shutdown(socket.SHUT_RD)
            conn.setblocking(False)
            return conn.recv(1) == wire.COMMIT
        except OSError:
            return False

    # -- giving connections away (the receiver's worker) -----------------------------------
    def offer(self, peer: Peer, first: str, session_id: str, base_url: str | None) -> bool:
        """Move `peer`, whose first message `first` joins `session_id`, to its sender's
        worker if that is another one on this host. True: moved (the caller forgets the
        connection); False: nothing happened, serve it here."""
        state = self._state
        if not self.listening or not peer.movable or state.router.local(session_id, Role.SENDER):
            return False
        try:
            node = state.store.waiting_sender_node(session_id)
        except StoreUnavailable:
            return False  # the join here says so
        if not node or node == state.node:
            return False
        carried = peer.reader_state()
        if carried is None or self._misses.get(node, 0.0) > time.monotonic():
            return False
        reader = replace(carried, inbox=(first, *carried.inbox))  # the taker starts at the join
        try:
            offer = wire.encode(wire.Offer(peer.ip, base_url, reader))
        except ValueError:
            return False
        outcome = self._give(node, peer, offer)
        state.metrics.handoff(outcome)
        return outcome is Outcome.MOVED

    def _give(self, node: str, peer: Peer, offer: bytes) -> Outcome:
        conn = self._connect(node)
        if conn is None:
            return Outcome.UNREACHABLE
        try:
            return _settle(conn, peer, offer)
        finally:
            conn.close()

    def _connect(self, node: str) -> socket.socket | None:
        """A connection to `node`'s handoff socket, if it is ours on this host."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.setblocking(False)
            err = conn.connect_ex(address(self._prefix, node))
            if err == 0 and peer_uid(conn) == os.geteuid():
                return conn
        except OSError:
            err = errno.ECONNREFUSED
        conn.close()
        if err == 0:
            log.warning("handoff: the socket of node %s belongs to another user", node)
        if err != errno.EAGAIN:  # EAGAIN: its backlog is full, try again next time
            self._miss(node)
        return None

    def _miss(self, node: str) -> None:
        now = time.monotonic()
        if len(self._misses) > 1000:
            self._misses = {n: until for n, until in self._misses.items() if until > now}
        self._misses[node] = now + MISS_FOR


def _settle(conn: socket.socket, peer: Peer, offer: bytes) -> Outcome:
    """Send the offer with the connection's descriptor; commit if the taker takes it."""
    rights = array.array("i", [peer.fileno()])
    try:
        conn.settimeout(ANSWER_WAIT)
        sent = conn.sendmsg([offer], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        if sent < len(offer):
            conn.sendall(offer[sent:])
        answer = conn.recv(1)
    except TimeoutError:
        return Outcome.TIMEOUT
    except OSError:
        return Outcome.GONE
    if answer == wire.DECLINED:
        return Outcome.DECLINED
    if answer != wire.TAKEN:
        return Outcome.GONE
    return Outcome.MOVED if peer.moved_out(lambda: _commit(conn)) else Outcome.GONE


def _commit(conn: socket.socket) -> bool:
    try:
        conn.sendall(wire.COMMIT)
    except OSError:
        return False
    return True


def _recv_some(conn: socket.socket, n: int) -> bytes:
    chunk = conn.recv(n)
    if not chunk:
        raise ValueError("offer cut short")
    return chunk


def _tcp_socket(fd: int) -> socket.socket | None:
    """The received descriptor as a socket if it is a TCP connection, else closed."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return None
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        return sock
    sock.close()
    return None

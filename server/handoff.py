"""A receiver's connection moves to the worker holding its sender (same host, Redis store).

With several workers (and nodes) the kernel spreads connections by source address, so a
sender and its receiver usually land on different workers, and every message of their
exchange crossed Redis: handler, outbox, publisher, PUBLISH, the other worker's subscriber,
write. Here the worker that reads a receiver's `join` joins it in one store call that, when
the sender's node is a neighbour (server.handoff_wire.neighbourhood), names that node for
the receiver too; it then passes that worker the TCP connection itself (SCM_RIGHTS), with
what was already read from it and the joined record. The sender's worker serves the
receiver from the join on as if it had joined there, without asking the store again: the
record names one node for both roles and the whole exchange is local (LocalRouter
delivery). An offer served by its giver after all (below) is `rehome`d in the store.

Each worker listens on an abstract Unix socket named from the Redis prefix and its node id;
abstract names live in one network namespace, so a connect that works means "this host",
and a refused one is remembered for a while (a node on another host). Both ends check the
other's uid (SO_PEERCRED): no other local user can inject connections or take them. Over
that link the giver passes, once, one end of a private mailbox (a SOCK_SEQPACKET pair) and
keeps both: each offer is then one message in the mailbox, and a handoff costs the giver
one sendmsg and the taker one recvmsg (no answer, no round trip; a three-way handshake on
the link cost ~20 syscalls and three process wake-ups per offer, more than the Redis hop).

Exactly one worker serves each connection because reading a message is atomic: whoever
reads an offer from the mailbox serves it. The taker reads as soon as the mailbox is
readable; the giver reads back every offer still there TAKE_BACK_AFTER after it was sent (a
stopped or swamped taker) and serves it itself, and takes back everything at once if the
taker's link closes (it stopped or died). One timer per mailbox does that, running only
while an offer may be waiting: it peeks at the oldest offer's send time, takes it back if
it is due, and otherwise sleeps until it is (a timer per offer had been a wakeup and a
failed read per exchange, nearly always for an offer read long before). The giver marks
the connection moved under its write lock, together with the send, so nothing it writes (a
shutdown's close) can follow. TLS connections never move (the TLS state lives in the
process), nor do connections under the in-process test server (threads).
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from server import handoff_wire as wire
from server.config import ServerConfig
from server.metrics import Metrics
from server.store import Router, SessionRecord, SessionStore

if TYPE_CHECKING:
    from server.connection import Peer


class Host(Protocol):
    """What the handoff needs of its worker's server.state.ServerState (which creates it:
    a Protocol, so the two modules do not import each other)."""

    config: ServerConfig
    node: str
    store: SessionStore
    router: Router
    metrics: Metrics

log = logging.getLogger("sp2p.server")

#: how long an offer may wait in the mailbox before its giver takes it back and serves the
#: connection itself (a stopped or swamped taker); a taker usually reads it within a ms
TAKE_BACK_AFTER = 0.5
#: how long a taker waits for a new giver to pass its mailbox
LINK_WAIT = 2.0
#: how long a node that could not be reached is not tried again (on another host, or gone)
MISS_FOR = 30.0
BACKLOG = 128
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Outcome(StrEnum):
    """How an offer ended (the giver's metrics label)."""

    MOVED = "moved"
    TAKEN_BACK = "taken_back"  #: not read within TAKE_BACK_AFTER, or the taker went away
    FULL = "full"  #: the mailbox did not take it (a swamped taker): served here
    UNREACHABLE = "unreachable"  #: no such socket here (another host) or a foreign owner


Adopt = Callable[[Any, wire.Offer], None]


def address(prefix: str, node: str) -> str:
    """A worker's abstract socket name (the prefix is hashed if long: names are <= 107 bytes;
    "handoff2": offers carry a send time and the record since, so an older worker's socket,
    during a restart, is not one of ours)."""
    if len(prefix) > 48:
        prefix = hashlib.sha256(prefix.encode()).hexdigest()[:24]
    return f"\0sp2p-handoff2-{prefix}-{node}"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (for a connected client:
    the listener's owner; for an accepted one: the client's)."""
    _pid, uid, _gid = _CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    return int(uid)


@dataclass(slots=True)
class _Box:
    """A giver's mailbox to one taker: offers go into `out`; the taker reads them from its
    copy of `back`, and so may we (taking back)."""

    link: socket.socket
    out: socket.socket
    back: socket.socket
    watch: Any
    #: the take-back timer, while an offer may wait in the mailbox (else None)
    timer: Any = None


class Handoff:
    """One worker's side of the handoff: offering receivers away, and taking them in."""

    def __init__(self, state: Host) -> None:
        self._state = state
        self._prefix = state.config.redis_prefix
        self._server: Any = None
        self._pool: Any = None
        self._loop: Any = None
        #: this worker's epoll set, as libev runs it (see _unwatch)
        self._epoll: Any = None
        self._adopt: Adopt | None = None
        self._stopping = False
        #: node -> monotonic time until which it is not tried (MISS_FOR)
        self._misses: dict[str, float] = {}
        #: node -> our mailbox to it
        self._boxes: dict[str, _Box] = {}
        #: givers' links to us (closed when we stop: they take back what we did not read)
        self._links: set[socket.socket] = set()

    @property
    def listening(self) -> bool:
        return self._server is not None and not self._stopping

    def listen(self, pool: Any, adopt: Adopt) -> None:
        """Take offers from now on (in a gevent worker): `pool` runs the greenlets (the
        worker's pool, so adopted connections count as its own), `adopt` serves a
        connection whose offer was read (ours taken back, or another worker's)."""
        import gevent
        import gevent.monkey
        from gevent.server import StreamServer

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(address(self._prefix, self._state.node))
            sock.listen(BACKLOG)
        except OSError as exc:  # the node still works, pairs just cross Redis
            sock.close()
            log.warning("handoff socket unavailable, receivers will not move here: %s", exc)
            return
        self._pool, self._adopt, self._loop = pool, adopt, gevent.get_hub().loop
        if self._loop.backend == "epoll":  # (gevent's monkey patches hide select.epoll)
            epoll = gevent.monkey.get_original("select", "epoll")
            self._epoll = epoll.fromfd(os.dup(self._loop.fileno()))
        self._server = StreamServer(sock, handle=self._serve_link, spawn=pool)
        self._server.start()

    def stop(self) -> None:
        """Stop taking and making offers (a stopping worker)."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()  # its reader ends; the giver takes back what is left
        for node in list(self._boxes):
            self._drop(node)

    def _serve(self, client: socket.socket, offer: wire.Offer) -> None:
        """Serve a connection whose offer we read (in the hub: only spawns)."""
        assert self._adopt is not None
        pool = self._pool
        if pool.full():  # (Pool.spawn would wait for room, and the hub must not wait)
            import gevent

            gevent.spawn(self._adopt, client, offer)
        else:
            pool.spawn(self._adopt, client, offer)

    # -- taking connections in (the sender's worker) ---------------------------------------
    def _serve_link(self, link: socket.socket, _addr: Any) -> None:
        """A giver's link: it passes its mailbox, then stays open while the giver lives."""
        if peer_uid(link) != os.geteuid():
            log.warning("handoff: refused a connection from another user")
            link.close()
            return
        try:
            link.settimeout(LINK_WAIT)
            _data, fds, _flags, _ = socket.recv_fds(link, 16, 2)
        except OSError:
            fds = []
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            link.close()
            return
        box = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fds[0])
        box.setblocking(False)
        watch = self._loop.io(box.fileno(), 1)
        watch.start(self._read_box, box)
        self._links.add(link)
        try:
            link.settimeout(None)
            while link.recv(16):  # nothing comes: the end of the giver ends this
                pass
        except OSError:
            pass
        finally:
            self._links.discard(link)
            watch.close()
            if not self._stopping:  # the giver is gone: what it offered is ours to serve
                self._read_box(box)
            box.close()
            link.close()

    def _read_box(self, box: socket.socket) -> None:
        """In the hub: serve every offer waiting in a mailbox."""
        for client, offer in _offers(box):
            self._serve(client, offer)

    # -- giving connections away (the receiver's worker) -----------------------------------
    def can_move(self, peer: Peer) -> bool:
        """Whether `peer`'s join here may name its sender's node for it (see offer)."""
        return self.listening and peer.movable

    def offer(self, peer: Peer, first: str, joined: SessionRecord, base_url: str | None) -> bool:
        """Move `peer`, whose first message `first` joined `joined` for the node its sender
        is on (another worker's on this host), to that worker. True: moved (the caller
        forgets the connection); False: nothing happened, serve it here (after `rehome`)."""
        state = self._state
        node = joined.receiver_node
        if not self.listening or not peer.movable or self._misses.get(node, 0.0) > time.monotonic():
            return False
        carried = peer.reader_state()
        if carried is None:
            return False
        reader = replace(carried, inbox=(first, *carried.inbox))  # the taker starts at the join
        try:
            data = wire.encode(wire.Offer(peer.ip, base_url, reader, peer.family, joined), time.monotonic())
        except ValueError:
            return False
        box = self._boxes.get(node) or self._open(node)
        if box is None:
            state.metrics.handoff(Outcome.UNREACHABLE)
            return False
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [peer.fileno()]))]

        def send() -> bool:
            try:
                box.out.sendmsg([data], rights)
            except OSError:  # full (EAGAIN), or the mailbox broke
                return False
            return True

        if not peer.moved_out(send):
            state.metrics.handoff(Outcome.FULL)
            return False
        self._unwatch(peer.fileno())
        if box.timer is None:
            self._arm(box, TAKE_BACK_AFTER)
        state.metrics.handoff(Outcome.MOVED)
        return True

    def _unwatch(self, fd: int) -> None:
        """Take a moved connection out of our epoll set while our descriptor still names
        it: an epoll entry belongs to the connection, not the descriptor, so after our close
        it would go on reporting the taker's traffic here, and libev, seeing events for a
        descriptor it no longer knows, rebuilds its whole epoll set (every connection held:
        ~0.8 ms of kernel time per exchange at 15,000 idle)."""
        if self._epoll is not None:
            with contextlib.suppress(OSError):  # (never added: nothing to remove)
                self._epoll.unregister(fd)

    def _arm(self, box: _Box, delay: float) -> None:
        box.timer = self._loop.timer(max(delay, 0.0))
        box.timer.start(self._take_back, box)

    def _take_back(self, box: _Box) -> None:
        """In the hub: serve here every offer that waited TAKE_BACK_AFTER unread; sleep
        until the oldest one left is due, or until the next offer if none is left."""
        box.timer = None
        while True:
            try:  # the oldest offer's head, left where it is (no descriptor comes with it)
                head = box.back.recv(wire.HEAD.size, socket.MSG_PEEK)
            except OSError:  # empty (EAGAIN), or the mailbox was dropped
                return
            if not head:
                return
            if len(head) == wire.HEAD.size:
                wait = wire.sent_at(head) + TAKE_BACK_AFTER - time.monotonic()
                if wait > 0:
                    self._arm(box, wait)
                    return
            # due (or malformed: _offers drops it). Should the taker read it first, this
            # takes the next one, a little early: still served exactly once, here
            for client, offer in _offers(box.back, limit=1):
                self._state.metrics.handoff(Outcome.TAKEN_BACK)
                self._serve(client, offer)

    def _open(self, node: str) -> _Box | None:
        """A mailbox to `node`, if it is a worker of ours on this host."""
        link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        link.setblocking(False)
        try:
            err = link.connect_ex(address(self._prefix, node))
            if err == 0 and peer_uid(link) != os.geteuid():
                log.warning("handoff: the socket of node %s belongs to another user", node)
                err = errno.EACCES
        except OSError as exc:
            err = exc.errno or errno.EIO
        if err:
            link.close()
            if err != errno.EAGAIN:  # EAGAIN: its backlog is full, try again next time
                self._miss(node)
            return None
        out, back = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            link.sendmsg([b"M"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [back.fileno()]))])
        except OSError:
            for sock in (link, out, back):
                sock.close()
            self._miss(node)
            return None
        out.setblocking(False)
        back.setblocking(False)
        watch = self._loop.io(link.fileno(), 1)  # readable only at its end (the taker went)
        watch.start(self._drop, node)
        box = self._boxes[node] = _Box(link, out, back, watch)
        return box

    def _drop(self, node: str) -> None:
        """Forget a mailbox (the taker went, or we stop): take back what it still holds."""
        box = self._boxes.pop(node, None)
        if box is None:
            return
        box.watch.close()
        if box.timer is not None:
            box.timer.close()
            box.timer = None
        for client, offer in _offers(box.back):
            self._state.metrics.handoff(Outcome.TAKEN_BACK)
            self._serve(client, offer)
        for sock in (box.link, box.out, box.back):
            sock.close()

    def _miss(self, node: str) -> None:
        now = time.monotonic()
        if len(self._misses) > 1000:
            self._misses = {n: until for n, until in self._misses.items() if until > now}
        self._misses[node] = now + MISS_FOR


def _offers(box: socket.socket, limit: int = -1) -> Iterator[tuple[socket.socket, wire.Offer]]:
    """Read offers from a mailbox without waiting (at most `limit`, -1: all there are):
    each with its connection as a socket. Malformed ones are logged and dropped."""
    while limit != 0:
        limit -= 1
        try:
            data, fds, flags, _ = socket.recv_fds(box, wire.HEAD.size + wire.MAX_OFFER + 1, 2)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # closed under us (a dropped mailbox)
            return
        if not data and not fds:
            return  # every writer closed
        try:
            if len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ValueError(f"{len(fds)} descriptors, flags {flags:#x}")
            if len(data) < wire.HEAD.size or wire.body_length(data) != len(data) - wire.HEAD.size:
                raise ValueError("length does not match")
            offer = wire.decode(data[wire.HEAD.size :])
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            log.warning("handoff: dropped a malformed offer: %s", exc)
            continue
        yield socket.socket(offer.family, socket.SOCK_STREAM, 0, fds[0]), offer  # (no getsockopt)

"""A receiver's connection moves to its sender's worker (server/handoff.py), for real.

REAL gunicorn with four gevent workers and a real redis-server; CLI-like WebSocket clients
from their own 127.x source addresses. Which process holds the server side of a connection
is read from the kernel (`ss -tnp`), never from our logs; a pair served by one worker has
both ends there. Faults are real too: a worker SIGKILLed or SIGSTOPped, an intruder running
as `nobody` on the handoff socket, a sender leaving while its receiver moves.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import redis
import websocket

from server import handoff_wire as wire
from server import relay
from server.connection import ReaderState
from server.redis_store import RedisStore
from server.sessions import TOO_MANY_MISSES, MemoryStore
from server.store import JoinRefused, SessionRecord
from tests.server.conftest import StoreFactory
from tests.server.helpers import Client, hello, http_get, wait_until
from tests.server.workers import PID, children, tls_workers
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

#: a distinct third octet per use, so every client has a source address of its own
_nets = itertools.count(10)


# -- the offer on the wire (sans-IO) ----------------------------------------------------------
def _reader(**changes: object) -> ReaderState:
    fields: dict[str, object] = {
        "inbox": ('{"type":"join"}', "é"),
        "leftover": b"\x81\xfe\x00",
        "next_ping": 123.5,
        "awaiting_pong": True,
        "last_activity": 99.25,
    }
    fields.update(changes)
    return ReaderState(**fields)  # type: ignore[arg-type]


def test_an_offer_survives_the_wire() -> None:
    joined = SessionRecord("abc", 2, "198.51.100.1", "cli", 1.5, 2.5, 3.25, "browser", '{"x":"\u00e9"}', False,
                           "n1", "n1")  # fmt: skip
    for offer in (
        wire.Offer("203.0.113.9", "https://x.example", _reader()),
        wire.Offer("::1", None, _reader(next_ping=float("inf"), leftover=b"", inbox=()), socket.AF_INET6),
        wire.Offer("203.0.113.9", None, _reader(), socket.AF_INET, joined),
    ):
        data = wire.encode(offer, 1234.5)
        assert wire.body_length(data) == len(data) - wire.HEAD.size
        assert wire.sent_at(data) == 1234.5
        assert wire.decode(data[wire.HEAD.size :]) == offer


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{}", b'{"ip":1,"url":null,"inbox":[],"buf":"","ping":null,"pong":false,"seen":0,"fam":2}',
     b'{"ip":"a","url":null,"inbox":[3],"buf":"","ping":null,"pong":false,"seen":0,"fam":2}',
     b'{"ip":"a","url":null,"inbox":[],"buf":"!!","ping":null,"pong":false,"seen":0,"fam":2}',
     b'{"ip":"a","url":null,"inbox":[],"buf":"","ping":null,"pong":false,"seen":0,"fam":1}', b"\xff",
     b'{"ip":"a","url":null,"inbox":[],"buf":"","ping":null,"pong":false,"seen":0,"fam":2,"rec":{"x":1}}'],
)
def test_a_malformed_offer_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="."):
        wire.decode(body)


def test_an_oversized_offer_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="too large"):
        wire.encode(wire.Offer("1.2.3.4", None, _reader(inbox=("x" * wire.MAX_OFFER,))), 0.0)
    with pytest.raises(ValueError, match="too large"):
        wire.body_length(wire.HEAD.pack(wire.MAX_OFFER + 1, 0.0))


@pytest.mark.parametrize("backend", ["memory", "redis"], indirect=True)
def test_a_join_that_follows_names_a_neighbour_senders_node_and_rehome_undoes_it(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    neighbour = not isinstance(store, MemoryStore)  # one process: no neighbours
    created = store.create("198.51.100.7", version=2, client_type="cli", node="n1")
    assert isinstance(created, SessionRecord)
    joined = store.join(created.id, version=2, client_type="cli", node="n2", follow=True)
    assert isinstance(joined, SessionRecord)
    assert joined.receiver_node == ("n1" if neighbour else "n2")
    assert store.get(created.id) == joined
    assert store.join(created.id, version=2, client_type="cli", node="n3", follow=True) == JoinRefused(
        relay.SESSION_FULL
    )
    rehomed = store.rehome(created.id, "n2")
    assert rehomed == replace(joined, receiver_node="n2")
    assert store.get(created.id) == rehomed
    if neighbour:  # the dead-node sweep finds it under both nodes
        assert created.id in store.sessions_of("n1")
        assert created.id in store.sessions_of("n2")
    assert store.end(created.id) == rehomed
    assert store.rehome(created.id, "n2") is None  # ended
    unjoined = store.create("198.51.100.7", version=2, client_type="cli", node="n1")
    assert isinstance(unjoined, SessionRecord)
    assert store.rehome(unjoined.id, "n2") is None  # nobody joined it


@pytest.mark.parametrize("backend", ["memory", "redis"], indirect=True)
def test_a_join_over_the_miss_limit_is_refused_by_the_join_itself(make_store: StoreFactory) -> None:
    """The failed-join back-off is checked first, and with Redis inside the join script: a
    moved join was a miss-limit read of its own before (a round trip, on a pool connection)."""
    store = make_store()
    limiter = store.limiter("miss", 2, 60.0)
    created = store.create("198.51.100.9", version=2, client_type="cli", node="n1")
    assert isinstance(created, SessionRecord)

    def calls() -> tuple[int, int]:  # scripts and GETs (the limiter's own check) Redis ran
        if not isinstance(store, RedisStore):
            return 0, 0
        stats = store.r.info("commandstats")
        return tuple(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "get"))  # type: ignore[return-value]

    for _ in range(2):
        assert limiter.hit("203.0.113.5")
    store.join("nosuchid", version=2, client_type="cli", node="n2")  # (Redis: loads the script)
    before = calls()
    refused = store.join(created.id, version=2, client_type="cli", node="n2", misses=(limiter, "203.0.113.5"))
    assert refused == JoinRefused(TOO_MANY_MISSES)
    if isinstance(store, RedisStore):  # one script call, whose GET is the check
        assert (calls()[0] - before[0], calls()[1] - before[1]) == (1, 1)
    assert store.get(created.id) == created  # the slot is still free
    joined = store.join(created.id, version=2, client_type="cli", node="n2", misses=(limiter, "203.0.113.6"))
    assert isinstance(joined, SessionRecord)
    assert joined.receiver_node == "n2"


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_join_never_follows_a_sender_elsewhere(make_store: StoreFactory, redis_url: str) -> None:
    """A sender on another host, namespace or uid (its record says so), or a join that does
    not ask: the record names the joining node."""
    store = make_store()
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for follow, host in ((True, "elsewhere"), (False, None)):
            created = store.create("198.51.100.8", version=2, client_type="cli", node="n1")
            assert isinstance(created, SessionRecord)
            if host is not None:
                client.hset(store._k("s", created.id), "sh", host)
            joined = store.join(created.id, version=2, client_type="cli", node="n2", follow=follow)
            assert isinstance(joined, SessionRecord)
            assert joined.receiver_node == "n2"
    finally:
        client.close()


# -- four real workers ------------------------------------------------------------------------
def _ss(*args: str) -> list[str]:
    return subprocess.run(["ss", "-Hn", *args], capture_output=True, text=True, check=True).stdout.splitlines()


def holders(server: ServerProc) -> dict[str, set[int]]:
    """Client address ("ip:port") -> the server processes holding that connection."""
    found: dict[str, set[int]] = {}
    for line in _ss("-tp", "state", "established", f"( sport = :{server.port} )"):
        fields = line.split()
        found[fields[3]] = {int(pid) for pid in PID.findall(line)}
    return found


def held_by(server: ServerProc, client: Client) -> set[int]:
    host, port = client.ws.sock.getsockname()[:2]
    return holders(server).get(f"{host}:{port}", set())


def handoff_sockets(pids: set[int]) -> list[str]:
    """Abstract handoff socket names these processes listen on."""
    return [
        line.split()[4]
        for line in _ss("-xlp")
        if "sp2p-handoff" in line and {int(p) for p in PID.findall(line)} & pids
    ]


def handoffs(server: ServerProc, url: str | None = None) -> dict[str, float]:
    """sp2p_handoffs_total by outcome, summed over the workers."""
    body = http_get((url or server.http_url) + "/metrics")[2].decode()
    found = re.findall(r'^sp2p_handoffs_total\{outcome="(\w+)"\} (\S+)$', body, re.MULTILINE)
    return {outcome: float(value) for outcome, value in found}


def client_on(server: ServerProc, want: set[int], net: int | None = None) -> Client:
    """A connected client (WebSocket handshake done) held by one of the `want` workers; the
    kernel picks the worker by source address, so source addresses are tried in turn."""
    net = next(_nets) if net is None else net
    for host in range(1, 200):
        client = Client(server.ws_url, source_ip=f"127.0.{net}.{host}")
        if wait_until(partial(held_by, server, client), timeout=5) and held_by(server, client) <= want:
            return client
        client.close()
    raise AssertionError(f"no source address led to {want}")


def stale_epoll_entries(pid: int) -> list[str]:
    """Entries of a process's epoll sets whose descriptor is closed or now names another
    file: an entry belongs to the open file, so it outlives our descriptor while another
    process holds the file (a connection given away), and libev rebuilds its whole set
    when such an entry reports an event."""
    stale = []
    fds = Path(f"/proc/{pid}/fd")
    for link in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(link) != "anon_inode:[eventpoll]":
                continue
            for line in Path(f"/proc/{pid}/fdinfo/{link.name}").read_text().splitlines():
                match = re.match(r"tfd:\s*(\d+).*\bino:([0-9a-f]+)", line)
                if match is None:
                    continue
                try:
                    target = os.stat(fds / match.group(1)).st_ino
                except OSError:
                    target = -1
                if target != int(match.group(2), 16):
                    stale.append(line)
    return stale


def join_text(session_id: str) -> str:
    return json.dumps({"type": "join", "payload": {"version": 2, "sessionId": session_id, "clientType": "cli"}})


def frame(text: str) -> bytes:
    return bytes(websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format())


@pytest.mark.slow
def test_pairs_end_up_in_one_worker_and_exchange_in_order(four: ServerProc) -> None:
    pairs = []
    for i in range(24):
        net = next(_nets)
        sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{net}.1")
        receiver = Client(four.ws_url, source_ip=f"127.0.{net}.2")
        receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "cli"})
        receiver.expect("welcome")
        assert sender.expect("peer-joined") == {"clientType": "cli"}
        for n in range(5):
            sender.send("candidate", {"n": n, "pair": i})
            receiver.send("candidate", {"n": n, "pair": i})
        for n in range(5):
            assert receiver.expect("candidate") == {"n": n, "pair": i}
            assert sender.expect("candidate") == {"n": n, "pair": i}
        pairs.append((sender, receiver))
    # both ends of every pair in one worker process, and only there
    assert wait_until(lambda: all(len(held_by(four, r)) == 1 for _, r in pairs), timeout=10)
    owners = [(held_by(four, s), held_by(four, r)) for s, r in pairs]
    assert all(s == r and len(s) == 1 for s, r in owners), owners
    assert len({min(s) for s, _ in owners}) > 1  # the senders were spread over the workers
    moved = handoffs(four).get("moved", 0)
    assert moved >= 6, handoffs(four)  # ~3 in 4 receivers land on another worker at first
    for pid in children(four):  # no worker still watches a connection it gave away
        assert stale_epoll_entries(pid) == [], pid
    for sender, receiver in pairs:
        receiver.close()
        assert sender.expect("peer-left") == {}
    assert "Traceback" not in four.stderr_text()


@pytest.mark.slow
def test_bytes_that_came_with_the_join_move_with_it(four: ServerProc) -> None:
    """The join, the next message and the start of a third in one write, the rest later:
    the worker that read them carries what it read to the sender's worker."""
    workers = children(four)
    before = handoffs(four).get("moved", 0)
    for _ in range(6):
        net = next(_nets)
        sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{net}.1")
        (home,) = held_by(four, sender)
        receiver = client_on(four, workers - {home}, net)
        third = frame(json.dumps({"type": "offer", "payload": {"sdp": "x" * 300}}))
        receiver.ws.sock.sendall(frame(join_text(sid)) + frame('{"type":"crypto","payload":{"k":1}}') + third[:7])
        receiver.expect("welcome")
        assert sender.expect("peer-joined") == {"clientType": "cli"}
        assert sender.expect("crypto") == {"k": 1}
        receiver.ws.sock.sendall(third[7:])
        assert sender.expect("offer") == {"sdp": "x" * 300}
        assert held_by(four, receiver) == {home}
        sender.send("answer", {"a": 1})
        assert receiver.expect("answer") == {"a": 1}
        sender.close()
        receiver.close()
    assert handoffs(four).get("moved", 0) - before == 6


@pytest.mark.slow
def test_a_killed_sender_worker_leaves_the_receiver_a_clear_answer(four: ServerProc) -> None:
    sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{next(_nets)}.1")
    (home,) = held_by(four, sender)
    receiver = client_on(four, children(four) - {home})
    os.kill(home, signal.SIGKILL)
    assert wait_until(lambda: home not in children(four), timeout=10)  # reaped: its sockets are gone
    receiver.send_raw(join_text(sid))
    first = receiver.recv(timeout=10)
    if first["type"] == "welcome":  # joined here: the dead node's sweep tells it
        assert receiver.expect("peer-left", timeout=15) == {}
    else:
        assert first["type"] == "error" and first["payload"]["code"] == "session_not_found", first
    assert receiver.closed_within(5)
    assert handoffs(four).get("unreachable", 0) >= 1


@pytest.mark.slow
def test_a_stopped_sender_worker_is_waited_for_briefly_then_the_receiver_is_taken_back(
    four: ServerProc,
) -> None:
    sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{next(_nets)}.1")
    (home,) = held_by(four, sender)
    receiver = client_on(four, children(four) - {home})
    (there,) = held_by(four, receiver)
    os.kill(home, signal.SIGSTOP)
    try:
        started = time.monotonic()
        receiver.send_raw(join_text(sid))
        receiver.expect("welcome", timeout=10)
        waited = time.monotonic() - started
    finally:
        os.kill(home, signal.SIGCONT)
    assert waited >= 0.4  # the offer waits TAKE_BACK_AFTER in the mailbox, then it is taken back
    assert sender.expect("peer-joined") == {"clientType": "cli"}
    # the worker that woke up finds its mailbox empty and leaves the connection alone:
    # one welcome, one copy of every message, one holder
    sender.send("crypto", {"k": 2})
    assert receiver.expect("crypto") == {"k": 2}
    assert receiver.nothing_for(1.0)
    assert held_by(four, receiver) == {there}
    receiver.send("answer", {"a": 2})
    assert sender.expect("answer") == {"a": 2}
    assert handoffs(four).get("taken_back", 0) == 1


@pytest.mark.slow
def test_a_sender_leaving_during_the_handoff_gets_the_usual_answer(four: ServerProc) -> None:
    """The sender hangs up just as its receiver joins, so the handoff races the teardown:
    the receiver hears session_not_found, or welcome then peer-left; never silence."""
    workers = children(four)
    for _ in range(8):
        net = next(_nets)
        sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{net}.1")
        (home,) = held_by(four, sender)
        receiver = client_on(four, workers - {home}, net)
        receiver.send_raw(join_text(sid))
        sender.ws.sock.shutdown(socket.SHUT_RDWR)
        first = receiver.recv(timeout=10)
        if first["type"] == "welcome":
            assert receiver.expect("peer-left", timeout=10) == {}
        else:
            assert first["payload"]["code"] == "session_not_found", first
        assert receiver.closed_within(5)
        sender.close()
    assert "Traceback" not in four.stderr_text()


_INTRUDER_GIVES = """
import array, socket, sys
target = "\\0" + sys.argv[1]
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(target)
bait = socket.socket()
bait.bind(("127.0.0.1", 0))
bait.listen()
victim = socket.create_connection(bait.getsockname())
served, _ = bait.accept()
offer = bytes.fromhex(sys.argv[2])
conn.settimeout(5)
try:  # the worker may have hung up already
    conn.sendmsg([offer], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [victim.fileno()]))])
    answer = conn.recv(1)
except (BrokenPipeError, ConnectionResetError):
    answer = b""
served.settimeout(1.5)
try:
    written = served.recv(100)
except TimeoutError:
    written = b"(nothing)"
print(repr(answer), repr(written))
"""

_INTRUDER_TAKES = """
import socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("\\0" + sys.argv[1])
listener.listen()
print("ready", flush=True)
listener.settimeout(20)
conn, _ = listener.accept()
conn.settimeout(5)
data, fds, _flags, _ = socket.recv_fds(conn, 65536, 4)
print(len(data), len(fds), flush=True)
"""


def _as_nobody(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-I", "-c",
         textwrap.dedent(script), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
    )  # fmt: skip


@pytest.mark.slow
def test_another_user_can_neither_give_nor_take_connections(four: ServerProc, redis_url: str) -> None:
    names = handoff_sockets(children(four))
    assert len(names) == 4, names  # one per worker
    # giving: a connection pushed in by another user is never served
    join = join_text("aaaaaaaa")
    offer = wire.encode(wire.Offer("127.0.0.1", None, ReaderState((join,), b"", float("inf"), False, 0.0)), 0.0)
    intruder = _as_nobody(_INTRUDER_GIVES, names[0].lstrip("@"), offer.hex())
    out, err = intruder.communicate(timeout=20)
    assert intruder.returncode == 0, err
    assert out.split() == ["b''", "b'(nothing)'"]
    assert wait_until(lambda: "handoff: refused a connection from another user" in four.stderr_text())
    # taking: a socket another user bound under a node's name gets no connection
    sender, sid, _ = hello(four.ws_url, source_ip=f"127.0.{next(_nets)}.1")
    (home,) = held_by(four, sender)
    prefix = names[0].lstrip("@").removeprefix("sp2p-handoff2-").rsplit("-", 1)[0]
    taker = _as_nobody(_INTRUDER_TAKES, f"sp2p-handoff2-{prefix}-f00d")
    try:
        assert taker.stdout is not None and taker.stdout.readline().strip() == "ready"
        client = redis.Redis.from_url(redis_url)
        assert client.hset(f"{prefix}:s:{sid}", "sn", "f00d") == 0  # the record now names it
        client.close()
        receiver = client_on(four, children(four) - {home})
        receiver.send_raw(join_text(sid))
        receiver.expect("welcome")  # served where it landed
        out, err = taker.communicate(timeout=20)
    finally:
        taker.kill()
    assert out.split() == ["0", "0"], (out, err)  # connected, then dropped: no bytes, no descriptor
    assert wait_until(lambda: "handoff: the socket of node f00d belongs to another user" in four.stderr_text())
    assert handoffs(four).get("unreachable", 0) >= 1


@pytest.mark.slow
def test_tls_workers_never_hand_off(redis_url: str, tmp_path: Path) -> None:
    with tls_workers(redis_url, 4, tmp_path) as (server, connect):
        assert handoff_sockets(children(server)) == []
        apart = 0
        for _ in range(12):
            sender, receiver = connect(), connect()
            sender.send('{"type":"hello","payload":{"version":2}}')
            sid = json.loads(sender.recv())["payload"]["sessionId"]
            receiver.send(join_text(sid))
            assert json.loads(receiver.recv())["type"] == "welcome"
            assert json.loads(sender.recv())["type"] == "peer-joined"
            found = holders(server)
            ends = [found.get("{}:{}".format(*ws.sock.getsockname()[:2]), set()) for ws in (sender, receiver)]
            apart += ends[0] != ends[1]
            sender.close()
            receiver.close()
        assert apart > 0  # pairs stay split over workers (P(all 12 together) ~ 6e-8)


@pytest.mark.slow
def test_the_memory_store_has_no_handoff_socket() -> None:
    with start_server(*NO_LIMIT_FLAGS) as server:
        assert handoff_sockets({server.proc.pid, *children(server)}) == []
        sender, sid, _ = hello(server.ws_url)
        receiver = Client(server.ws_url)
        receiver.send_raw(join_text(sid))
        receiver.expect("welcome")
        assert sender.expect("peer-joined") == {"clientType": "cli"}

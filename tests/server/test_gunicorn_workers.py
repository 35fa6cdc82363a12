"""Several gevent workers through REAL gunicorn: a listening socket per worker.

With -workers N each worker listens on its own SO_REUSEPORT socket beside the one the
arbiter bound and all workers share (server/listen.py), and a BPF program steers every new
connection to one worker's own socket (server/steering.py), so the kernel wakes one worker
per connection. Who listens, what is queued where and who holds a connection is read from
the kernel (`ss`), not from our logs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.server.helpers import hello, http_get, pair, wait_until
from tests.server.workers import (
    children,
    holders,
    listeners,
    own_listeners,
    shared_listener,
    start_workers,
    tls_workers,
)
from tests.support.server_proc import ServerProc, clean_env, server_command


@pytest.mark.slow
def test_every_worker_listens_on_its_own_socket_and_takes_connections(four: ServerProc) -> None:
    workers = children(four)
    assert "Listening at: http://127.0.0.1:" in four.stderr_text()
    # one socket each, and the arbiter's, which every worker serves too
    assert shared_listener(four).pids == {four.proc.pid, *workers}
    assert len(listeners(four)) == 1 + len(workers)
    held = [hello(four.ws_url)[0] for _ in range(48)]
    assert holders(four) == workers  # P(some worker hashed none of 48) ~ 4e-5
    # sessions pair whichever workers the two connections landed on
    for _ in range(6):
        sender, receiver, _sid = pair(four.ws_url)
        sender.send("crypto", {"publicKey": "k"})
        assert receiver.expect("crypto") == {"publicKey": "k"}
    for client in held:
        client.close()


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_service_answers_throughout(redis_url: str) -> None:
    with start_workers(redis_url, 2) as server:
        victim, survivor = sorted(children(server))
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in children(server), timeout=10)
        # its socket went with it: new connections reach the survivor until the new one boots
        for _ in range(20):
            assert http_get(server.http_url + "/health")[2] == b"ok"
        assert wait_until(lambda: len(children(server)) == 2, timeout=30)
        (replacement,) = children(server) - {survivor}
        assert wait_until(lambda: own_listeners(server) == Counter({survivor, replacement}), timeout=30)
        held = [hello(server.ws_url)[0] for _ in range(32)]
        assert holders(server) == {survivor, replacement}
        sender, receiver, _sid = pair(server.ws_url)
        sender.send("crypto", {"publicKey": "k"})
        assert receiver.expect("crypto") == {"publicKey": "k"}
        for client in held:
            client.close()
        assert "Traceback" not in server.stderr_text()


@pytest.mark.slow
def test_tls_on_every_worker(redis_url: str, tmp_path: Path) -> None:
    with tls_workers(redis_url, 2, tmp_path) as (server, connect):
        assert server.scheme == "https"
        opened = []
        for _ in range(24):
            ws = connect()
            opened.append(ws)
            ws.send('{"type":"hello","payload":{"version":2}}')
            assert json.loads(ws.recv())["type"] == "welcome"
        held, workers = holders(server), children(server)
        assert held == workers, (held, workers)  # P(one worker took all 24) ~ 1e-7
        for ws in opened:
            ws.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("addr", "hosts"),
    [("[::1]:0", ("[::1]",)), (":0", ("127.0.0.1", "[::1]"))],
    ids=["ipv6", "dual-stack"],
)
def test_ipv6_and_dual_stack_on_every_worker(redis_url: str, addr: str, hosts: tuple[str, ...]) -> None:
    with start_workers(redis_url, 2, "-addr", addr) as server:
        for host in hosts:
            held = [hello(f"ws://{host}:{server.port}/ws")[0] for _ in range(24)]
            assert holders(server) == children(server)
            for client in held:
                client.close()


def _second_server(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*server_command(), *flags], capture_output=True, text=True, env=clean_env(), timeout=60, check=False
    )


@pytest.mark.slow
def test_a_second_server_on_the_same_address_is_a_one_line_error(four: ServerProc, redis_url: str) -> None:
    """SO_REUSEPORT must not let a second service join the first one's workers."""
    addr = f"127.0.0.1:{four.port}"
    for flags in (("-workers", "2", "-redis", redis_url), ()):
        result = _second_server("-addr", addr, *flags)
        assert result.returncode == 1
        assert f"sp2p-server: cannot listen on {addr}: Address already in use" in result.stderr
        assert "Traceback" not in result.stderr
    assert own_listeners(four) == Counter(children(four))


_HEALTH = b"GET /health HTTP/1.0\r\n\r\n"


def _speaking(host: str, port: int) -> socket.socket:
    """A connection that sent its request: only then is it queued to be accepted
    (TCP_DEFER_ACCEPT, server/listen.py)."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(_HEALTH)
    return sock


def _queue_while_frozen(server: ServerProc, frozen: set[int], host: str, count: int) -> tuple[
    dict[frozenset[int], int], list[socket.socket]
]:
    """Open `count` connections that send their request while `frozen` are SIGSTOPped
    (the kernel still completes the handshakes): where each waits, by the pids holding the
    socket."""
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        waiting = [_speaking(host, server.port) for _ in range(count)]
        assert wait_until(lambda: sum(found.queued for found in listeners(server)) >= count, timeout=5)
        return {found.pids: found.queued for found in listeners(server)}, waiting
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


def _all_served(waiting: list[socket.socket]) -> None:
    for sock in waiting:
        with sock:
            assert sock.recv(4096).split(b"\r\n", 1)[0].endswith(b" 200 OK")


def _half_open(port: int, clients: list[socket.socket]) -> int:
    """How many of `clients` the server side still holds as SYN-RECV: handshake done, not
    queued to be accepted, no process holds them."""
    mine = {sock.getsockname()[1] for sock in clients}
    out = subprocess.run(["ss", "-Htn", "state", "syn-recv", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[-1].rsplit(":", 1)[1]) in mine for line in out.splitlines())


def _accepts_only_once_spoken_to(server: ServerProc) -> None:
    mute = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    try:
        # established on the client side; on ours no worker was woken and none holds them
        assert wait_until(lambda: _half_open(server.port, mute) == 20, timeout=5)
        assert sum(found.queued for found in listeners(server)) == 0
        for sock in mute:
            sock.sendall(_HEALTH)
        assert _half_open(server.port, mute) == 0
    finally:
        _all_served(mute)


def test_a_connection_is_accepted_once_it_speaks(sp2p_server: ServerProc) -> None:
    """TCP_DEFER_ACCEPT (server/listen.py): a worker is woken for a new connection once its
    request is there to read, not by the handshake's last ACK (one wake-up fewer per
    connection); until then the kernel holds it half-open, and its request is served."""
    _accepts_only_once_spoken_to(sp2p_server)


@pytest.mark.slow
def test_the_workers_own_sockets_accept_once_spoken_to_too(four: ServerProc) -> None:
    _accepts_only_once_spoken_to(four)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("addr", "host"),
    [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1"), (":0", "127.0.0.1"), (":0", "::1")],
    ids=["ipv4", "ipv6", "dual-stack-v4", "dual-stack-v6"],
)
def test_new_connections_queue_on_the_workers_own_sockets_only(redis_url: str, addr: str, host: str) -> None:
    """With every worker frozen, each connection waits where the steering (server/steering.py,
    which reads IPv4 and IPv6 headers) put it: none on the shared socket (that would wake all
    four), some on every worker's own; thawed, every one is served."""
    with start_workers(redis_url, 4, "-addr", addr) as server:
        workers = children(server)
        queued, waiting = _queue_while_frozen(server, workers, host, 48)
        assert queued[frozenset({server.proc.pid, *workers})] == 0
        own = {pids: n for pids, n in queued.items() if len(pids) == 1}
        assert sum(own.values()) == 48 and len(own) == 4 and all(own.values()), queued
        _all_served(waiting)


@pytest.mark.slow
def test_a_dead_workers_share_goes_to_sockets_still_served(redis_url: str) -> None:
    """A worker dead and not yet replaced (the arbiter frozen): its index is out of range,
    the kernel hashes those connections over the live sockets, the shared one included,
    and every connection is queued where a live worker accepts it."""
    with start_workers(redis_url, 3) as server:
        victim, *alive = sorted(children(server))
        os.kill(server.proc.pid, signal.SIGSTOP)  # no replacement meanwhile
        try:
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: not any(victim in found.pids for found in listeners(server)))
            # a third of the connections hash to the dead index, a third of those to the
            # shared socket: P(none of 150 there) ~ 2e-8
            queued, waiting = _queue_while_frozen(server, set(alive), "127.0.0.1", 150)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert sum(queued.values()) == 150, queued
        assert all(pids & set(alive) for pids in queued)  # every queue has a live worker
        assert queued[frozenset({server.proc.pid, *alive})] > 0  # the fallback took its share
        _all_served(waiting)


def test_one_worker_serves_the_socket_the_arbiter_listens_on(sp2p_server: ServerProc) -> None:
    """One worker has no siblings to wake: it serves the arbiter's socket alone."""
    assert wait_until(lambda: len(children(sp2p_server)) == 1, timeout=30)
    (worker,) = children(sp2p_server)
    assert [found.pids for found in listeners(sp2p_server)] == [{sp2p_server.proc.pid, worker}]

"""Per-connection behaviour under REAL gunicorn with its gevent worker (greenlets).

The in-process suite runs the app under werkzeug threads; these tests run the same
behaviours in the production worker: pings, timed writes, the TURN-credential delay, the
reaper, the 1009 close, and thousands of idle WebSockets closing at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from server.teardown import SLICE
from tests.server.helpers import Client, hello, http_get, pair, wait_until
from tests.support.redis_proc import RedisProc
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame with an all-zero mask (payload bytes stay as they are)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


HELLO = masked_frame(0x1, json.dumps({"type": "hello", "payload": {"version": 2}}).encode())


def worker_pid(server: ServerProc) -> int:
    def children() -> list[str]:
        out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True)
        return out.stdout.split()

    assert wait_until(lambda: len(children()) == 1, timeout=10)
    return int(children()[0])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


@pytest.fixture
def gserver() -> Iterator[ServerProc]:
    server = start_server(
        *NO_LIMIT_FLAGS,
        "-ping-interval",
        "1s",
        "-session-idle",
        "2500ms",
        "-reaper-interval",
        "100ms",
        "-turn-delay",
        "700ms",
        "-turn-servers",
        "turn:127.0.0.1:3478",
        "-turn-username",
        "u",
        "-turn-password",
        "p",
        "-write-timeout",
        "500ms",
    )
    try:
        yield server
    finally:
        server.stop()


def test_pings_reaper_turn_delay_and_timed_writes(gserver: ServerProc) -> None:
    url = gserver.ws_url
    # a sender that never reads misses a pong (or the idle limit) and is closed
    silent, _, _ = hello(url)
    # pings: a sender answering them outlives the 2.5 s idle limit
    waiting, sid, _ = hello(url)
    assert waiting.nothing_for(3.0)
    # TURN credentials no earlier than -turn-delay after the join, then the relay-retry
    receiver = Client(url)
    receiver.send("join", {"version": 2, "sessionId": sid})
    receiver.expect("welcome")
    waiting.expect("peer-joined")
    asked = time.monotonic()
    receiver.send("relay-retry")
    creds = receiver.expect("turn-credentials", timeout=5)
    assert time.monotonic() - asked >= 0.6
    assert creds["iceServers"][0]["username"] == "u"
    assert waiting.expect("relay-retry") == {}
    assert silent.closed_within(5)
    # timed writes: a receiver that never reads is cut after the write timeout, and its
    # sender is told; the flood of offers fills the socket buffers first
    slow_s, slow_r, _ = pair(url)
    slow_r.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    offer = json.dumps({"type": "offer", "payload": {"sdp": "x" * 60_000}})
    with contextlib.suppress(OSError):
        for _ in range(150):
            slow_s.send_raw(offer)
            time.sleep(0.01)  # under the per-connection message rate
    assert slow_s.closed_within(10)
    assert http_get(gserver.http_url + "/health")[2] == b"ok"
    s2, r2, _ = pair(url)
    s2.send("crypto", {"publicKey": "k"})
    assert r2.expect("crypto") == {"publicKey": "k"}


@pytest.mark.parametrize("size", [70_000, 2_000_000])
def test_oversize_closes_with_1009_not_a_reset(gserver: ServerProc, size: int) -> None:
    """issue 16 #6: the client reads our close frame (1009) and then a clean EOF."""
    sock = socket.create_connection(("127.0.0.1", gserver.port), timeout=5)
    sock.sendall(UPGRADE)
    assert b" 101 " in sock.recv(4096)
    sock.sendall(masked_frame(0x1, b"x" * size))
    data = b""
    while chunk := sock.recv(65536):  # ConnectionResetError here is the regression
        data += chunk
    sock.close()
    assert data[:2] == b"\x88\x14" and int.from_bytes(data[2:4], "big") == 1009


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, f"server closed an idle connection: {data[-200:]!r}"
        data += chunk
    return data


def _open_idle_senders(port: int, count: int, batch: int = 250) -> list[socket.socket]:
    """In batches: upgrade all, then hello on all (gunicorn's parser would swallow a
    frame pipelined behind the upgrade request)."""
    socks: list[socket.socket] = []
    while len(socks) < count:
        group = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(batch)]
        for s in group:
            s.sendall(UPGRADE)
        for s in group:
            _read_until(s, b"\r\n\r\n")
            s.sendall(HELLO)
        for s in group:
            _read_until(s, b'"welcome"')
        socks += group
    return socks


@pytest.mark.slow
def test_thousands_of_idle_senders_closing_at_once_leave_the_server_up() -> None:
    """issue 11: 5,000 idle senders vanish at once (half FIN, half RST); the worker stays
    up (no WORKER TIMEOUT), a session paired before keeps relaying, the descriptors come
    back, and the next session pairs."""
    count = 5000
    server = start_server(
        *NO_LIMIT_FLAGS, "-max-conns", "20000", "-hello-timeout", "60s", "-ping-interval", "120s"
    )
    socks: list[socket.socket] = []
    try:
        pid = worker_pid(server)
        baseline = open_fds(pid)
        # a session paired before the storm must keep working through it
        old_sender, old_receiver, _ = pair(server.ws_url, timeout=30)
        socks = _open_idle_senders(server.port, count)
        assert open_fds(pid) >= baseline + count
        assert threads_of(pid) < 10  # greenlets, not an OS thread per connection
        for i, s in enumerate(socks):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        socks = []
        # generous waits: on a loaded machine the worker may still be tearing down
        sender = Client(server.ws_url, timeout=30)
        sender.send("hello", {"version": 2})
        sid = sender.expect("welcome", timeout=30)["sessionId"]
        receiver = Client(server.ws_url, timeout=30)
        receiver.send("join", {"version": 2, "sessionId": sid})
        receiver.expect("welcome", timeout=30)
        sender.expect("peer-joined", timeout=30)
        sender.send("crypto", {"publicKey": "k"})
        assert receiver.expect("crypto", timeout=30) == {"publicKey": "k"}
        old_sender.send("offer", {"sdp": "still here"})
        assert old_receiver.expect("offer", timeout=30) == {"sdp": "still here"}
        old_receiver.send("answer", {"sdp": "me too"})
        assert old_sender.expect("answer", timeout=30) == {"sdp": "me too"}
        old_sender.close()
        old_receiver.close()
        assert wait_until(lambda: open_fds(pid) < baseline + 50, timeout=60)
        assert worker_pid(server) == pid
        log = server.stderr_text()
        assert "WORKER TIMEOUT" not in log and "Traceback" not in log
    finally:
        for s in socks:
            s.close()
        server.stop()


def close_wait(port: int) -> int:
    """Server-side sockets on `port` whose client hung up and which the server has not wound
    down yet (closed) — counted by the kernel."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "close-wait", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return len(out.splitlines())


@pytest.mark.slow
def test_a_new_hello_goes_before_thousands_that_closed_and_every_one_still_ends(redis_server: RedisProc) -> None:
    """issue 11: 4,000 idle senders on one worker (sessions in Redis) close at once. A new
    connection's upgrade and hello, sent together right after, are answered before half
    of them are wound down: all of them count as closed at the dial, and the kernel says how
    many are still in CLOSE-WAIT after the welcome, which can only overstate it (typically
    0-150; all of them when EOFs are not deferred). Paired, its receiver leaving, the sender hears
    peer-left before two slices of the others' sessions are ended. Then every one is
    wound down, its session ended in Redis and its descriptor given back."""
    count = 4000
    prefix = f"cf{os.getpid()}"
    server = start_server(
        *NO_LIMIT_FLAGS, "-workers", "1", "-redis", redis_server.url, "-redis-prefix", prefix,
        "-max-conns", "20000", "-hello-timeout", "60s", "-ping-interval", "120s", timeout=60,
    )  # fmt: skip
    sessions = redis.Redis.from_url(redis_server.url)
    socks: list[socket.socket] = []
    try:
        pid = worker_pid(server)
        # one session opened and ended first: the worker's own descriptors (its listener,
        # Redis connections, the background lane a teardown opens) are counted in the baseline
        (first,) = _open_idle_senders(server.port, 1, batch=1)
        first.close()
        assert wait_until(lambda: sessions.zcard(f"{prefix}:born") == 0, timeout=30)
        baseline = open_fds(pid)
        socks = _open_idle_senders(server.port, count)
        assert sessions.zcard(f"{prefix}:born") == count
        for s in socks:
            s.close()  # all at once
        socks = []
        # no `ss` between the close and the dial: on a loaded machine its hundreds of ms let
        # the idle worker wind down most of them before the dial (3,482 of 3,900 once in CI);
        # every one counts as closed from here, which can only overstate what went first
        before = count
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sender:
            sender.sendall(UPGRADE + HELLO)
            welcome = _read_until(sender, b'"welcome"')
            wound_down = before - close_wait(server.port)
            # without deferred EOFs it is all of them. With them it was up to 2,611 of 4,000 once
            # in ~13 quiet runs (1,519-4,000 in 9 of 12 at load 6-10): the hello's create queued
            # behind a teardown slice on the store's one Redis connection, and the idle loop
            # wound down more meanwhile. Background work has its own connection now: 242-534
            # in 6 runs at load 9
            assert wound_down < count // 2, f"the welcome came after {wound_down} of {before} were wound down"
            # a session someone waits on ends before the background teardown goes on
            sid = re.search(rb'"sessionId":\s*"([^"]+)"', welcome)
            assert sid is not None, welcome
            join = {"type": "join", "payload": {"version": 2, "sessionId": sid.group(1).decode()}}
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as receiver:
                receiver.sendall(UPGRADE + masked_frame(0x1, json.dumps(join).encode()))
                _read_until(receiver, b'"welcome"')
                _read_until(sender, b'"peer-joined"')
                open_before = sessions.zcard(f"{prefix}:born")
            _read_until(sender, b'"peer-left"')
            ended = open_before - sessions.zcard(f"{prefix}:born") - 1  # (and ours)
            assert ended < 2 * SLICE, f"peer-left came after {ended} sessions nobody waited on were ended"
        assert wait_until(lambda: close_wait(server.port) == 0, timeout=60)
        assert wait_until(lambda: sessions.zcard(f"{prefix}:born") == 0, timeout=30)
        assert wait_until(lambda: open_fds(pid) < baseline + 10, timeout=30)
        assert worker_pid(server) == pid
        assert "Traceback" not in server.stderr_text()
    finally:
        for s in socks:
            s.close()
        sessions.close()
        server.stop()


def test_ws_requests_skip_gunicorns_parser_even_in_pieces(gserver: ServerProc) -> None:
    """/ws is answered before gunicorn's HTTP parser (server/endpoint.py serve_raw): a head
    that arrives in pieces still upgrades, a refusal is a complete HTTP answer, and any
    other request on the same port still reaches Flask."""
    with socket.create_connection(("127.0.0.1", gserver.port), timeout=5) as sock:
        for i in range(0, len(UPGRADE), 20):
            sock.sendall(UPGRADE[i : i + 20])
            time.sleep(0.02)
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        sock.sendall(HELLO)
        assert b'"welcome"' in sock.recv(4096)
    foreign = UPGRADE.replace(b"\r\n\r\n", b"\r\nOrigin: https://evil.example\r\n\r\n")
    with socket.create_connection(("127.0.0.1", gserver.port), timeout=5) as sock:
        sock.sendall(foreign)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403 ") and b"is not authorized for Host" in answer
    assert b"X-Content-Type-Options: nosniff" in answer
    assert b"Server: gunicorn" not in answer  # gunicorn never saw it
    assert http_get(f"http://127.0.0.1:{gserver.port}/health")[2] == b"ok"

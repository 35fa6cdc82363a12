"""Several REAL sp2p-server nodes (gunicorn, gevent workers) on one REAL redis-server.

A node is one `sp2p-server -redis URL -workers 2` process tree on its own loopback port;
every worker is a node of the service with its own channel. Clients pick the node by port,
so a sender and a receiver land on different processes for sure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.server.helpers import Client, hello, http_get, wait_until
from tests.support.redis_proc import RedisProc
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def start_node(redis_url: str, *flags: str, prefix: str = "t") -> ServerProc:
    """A node of two workers; as if on a host of its own (-handoff=false: a pair across
    nodes stays split, its messages cross Redis)."""
    node = start_server(
        "-redis", redis_url, "-redis-prefix", prefix, "-workers", "2", "-handoff=false", *NO_LIMIT_FLAGS, *flags
    )
    assert wait_until(lambda: len(children(node.proc.pid)) == 2, timeout=15)
    # every worker subscribed and beating: /health answers ok from whichever we hit
    assert wait_until(lambda: http_get(node.http_url + "/health")[2] == b"ok", timeout=15)
    return node


def kill_node(node: ServerProc) -> None:
    """SIGKILL the whole process tree at once: no shutdown code runs."""
    pids = [node.proc.pid, *children(node.proc.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    node.proc.wait(10)


def _worker_holding(node: ServerProc) -> int:
    """The worker with an established TCP connection (the waiting sender's)."""
    for pid in children(node.proc.pid):
        if _has_established(pid):
            return pid
    raise AssertionError("no worker holds a connection")


def _has_established(pid: int) -> bool:
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    return f"pid={pid}," in out


@pytest.fixture
def redis_unix(tmp_path: Path) -> Iterator[RedisProc]:
    with RedisProc.start(tmp_path / "redis") as proc:
        yield proc


@pytest.fixture
def two_nodes(redis_unix: RedisProc) -> Iterator[tuple[ServerProc, ServerProc]]:
    a = start_node(redis_unix.url, "-max-sessions-per-ip", "3")
    b = start_node(redis_unix.url, "-max-sessions-per-ip", "3")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def join(url: str, sid: str) -> Client:
    receiver = Client(url)
    receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "browser"})
    return receiver


@pytest.mark.slow
def test_sender_and_receiver_on_different_nodes(two_nodes: tuple[ServerProc, ServerProc]) -> None:
    a, b = two_nodes
    sender, sid, welcome = hello(a.ws_url)
    assert welcome["baseUrl"] == a.http_url
    sender.send("file-info", {"data": "YmxvYg=="})
    # file-info answers on any node
    assert wait_until(lambda: http_get(f"{b.http_url}/api/file-info/{sid}")[2] == b'{"data":"YmxvYg=="}\n')
    receiver = join(b.ws_url, sid)
    assert receiver.expect("welcome")["peerClientType"] == "cli"
    assert sender.expect("peer-joined") == {"clientType": "browser"}
    # every message, in order, both directions
    for i in range(150):
        sender.send("candidate", {"candidate": f"s{i}"})
        receiver.send("candidate", {"candidate": f"r{i}"})
    assert [receiver.expect("candidate")["candidate"] for _ in range(150)] == [f"s{i}" for i in range(150)]
    assert [sender.expect("candidate")["candidate"] for _ in range(150)] == [f"r{i}" for i in range(150)]
    # a third party on node A cannot take the slot held on node B
    intruder = join(a.ws_url, sid)
    assert intruder.expect("error")["code"] == "session_full"
    receiver.close()
    assert sender.expect("peer-left") == {}
    assert sender.closed_within(5)
    assert http_get(f"{a.http_url}/api/file-info/{sid}")[0] == 404
    # /metrics sums the workers of a node
    text = http_get(a.http_url + "/metrics")[2].decode()
    assert 'sp2p_refusals_total{reason="session_full"} 1.0' in text


def _hgetall_calls(redis_url: str) -> int:
    """HGETALL calls Redis served so far, scripts' included (INFO commandstats)."""
    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


@pytest.mark.slow
def test_a_pair_across_nodes_reads_each_record_once(
    redis_unix: RedisProc, two_nodes: tuple[ServerProc, ServerProc]
) -> None:
    """The sender's node learns the join with peer-joined (no store read before relaying
    its answer), and the sender's node, told to close by the node that ended the session,
    does not end it a second time: of the record reads only the join's and the end's."""
    a, b = two_nodes
    redis_url = redis_unix.url
    sender, sid, _ = hello(a.ws_url)
    before = _hgetall_calls(redis_url)
    receiver = join(b.ws_url, sid)
    receiver.expect("welcome")
    sender.expect("peer-joined")
    sender.send("crypto", {"publicKey": "cw=="})
    assert receiver.expect("crypto") == {"publicKey": "cw=="}
    receiver.close()
    assert sender.expect("peer-left") == {}
    assert sender.closed_within(5)
    time.sleep(0.5)  # the sender's handler has ended by now (it would end the session here)
    assert _hgetall_calls(redis_url) - before == 2  # the join script's and the end script's


@pytest.mark.slow
def test_per_ip_cap_and_turn_budget_hold_across_nodes(redis_unix: RedisProc) -> None:
    flags = ("-max-sessions-per-ip", "2", "-turn-per-ip-hour", "1", "-turn-delay", "0s")
    turn = ("-turn-servers", "turn:127.0.0.1:3478", "-turn-secret", "s3cret")
    # these come after NO_LIMIT_FLAGS, so they win (a later flag overrides, as in Go)
    a = start_node(redis_unix.url, *turn, *flags, prefix="cap")
    b = start_node(redis_unix.url, *turn, *flags, prefix="cap")
    try:
        first, sid1, _ = hello(a.ws_url)
        second, _, _ = hello(b.ws_url)
        third = Client(a.ws_url)
        third.send("hello", {"version": 2})
        assert third.expect("error") == {
            "code": "rate_limited",
            "message": "too many active sessions from this IP",
        }
        # one TURN credential per IP per hour, whichever node answers
        receiver = join(b.ws_url, sid1)
        receiver.expect("welcome")
        first.expect("peer-joined")
        receiver.send("relay-retry")
        assert receiver.expect("turn-credentials")["iceServers"][0]["urls"] == ["turn:127.0.0.1:3478"]
        first.send("relay-retry")
        assert first.expect("relay-retry") == {}  # forwarded, but no credentials for this IP
        assert first.nothing_for(0.5)
        second.close()
    finally:
        a.stop()
        b.stop()


@pytest.mark.slow
def test_peers_of_a_killed_node_hear_peer_left(two_nodes: tuple[ServerProc, ServerProc]) -> None:
    a, b = two_nodes
    sender, sid, _ = hello(a.ws_url)
    receiver = join(b.ws_url, sid)
    receiver.expect("welcome")
    sender.expect("peer-joined")
    killed = time.monotonic()
    kill_node(a)
    try:
        assert receiver.expect("peer-left", timeout=10) == {}
    except Exception as exc:  # the surviving node's log says why it did not sweep
        raise AssertionError(b.stderr_text()[-4000:]) from exc
    assert time.monotonic() - killed < 10
    assert receiver.closed_within(3)
    # its records are gone: the id is unknown and the IP's count was released
    again = join(b.ws_url, sid)
    assert again.expect("error")["code"] == "session_not_found"
    s2, sid2, _ = hello(b.ws_url)
    r2 = join(b.ws_url, sid2)
    r2.expect("welcome")
    assert s2.expect("peer-joined") == {"clientType": "browser"}


@pytest.mark.slow
def test_redis_stopped_and_started_while_a_sender_waits(redis_unix: RedisProc) -> None:
    node = start_node(redis_unix.url, "-reaper-interval", "300ms")
    try:
        waiting, _, _ = hello(node.ws_url)
        redis_unix.stop()
        status, _, body = http_get(node.http_url + "/health")
        assert status == 503 and body.startswith(b"unhealthy: redis unreachable")
        refused = Client(node.ws_url)
        refused.send("hello", {"version": 2})
        assert refused.expect("error") == {
            "code": "server_busy",
            "message": "signaling store unavailable, try again shortly",
        }
        assert waiting.nothing_for(1.5)  # still connected, nothing crashed
        # a worker that dies and is replaced while Redis is down boots anyway (gunicorn
        # would halt the whole node on a worker boot error)
        waiting_pid = _worker_holding(node)
        spare = next(pid for pid in children(node.proc.pid) if pid != waiting_pid)
        os.kill(spare, signal.SIGKILL)
        assert wait_until(lambda: len(children(node.proc.pid)) == 2 and spare not in children(node.proc.pid))
        time.sleep(3.0)  # a boot error would show by now (gunicorn then halts the node)
        assert "Exception in worker process" not in node.stderr_text()
        assert node.proc.poll() is None and len(children(node.proc.pid)) == 2
        redis_unix.restart()  # empty: no persistence in this test
        # every worker recovers by itself; one /health answers from one worker, so ask until a
        # dozen in a row (each a new connection, spread over both workers) say ok
        assert wait_until(lambda: all(_healthy(node) for _ in range(12)), timeout=15)
        # the waiting sender's record was lost with Redis' memory: it is told, clearly
        lost = waiting.expect("error", timeout=10)
        assert lost == {
            "code": "session_expired",
            "message": "session lost by the server, please start again",
        }
        sender, sid, _ = hello(node.ws_url)
        receiver = join(node.ws_url, sid)
        receiver.expect("welcome")
        assert sender.expect("peer-joined") == {"clientType": "browser"}
        assert node.proc.poll() is None
        assert "Traceback" not in node.stderr_text()
    finally:
        node.stop()


def _healthy(node: ServerProc) -> bool:
    return http_get(node.http_url + "/health")[2] == b"ok"


@pytest.mark.slow
def test_unreachable_redis_is_a_one_line_startup_error(tmp_path: Path) -> None:
    from tests.support.server_proc import clean_env, server_command

    result = subprocess.run(
        [*server_command(), "-addr", "127.0.0.1:0", "-redis", f"unix://{tmp_path}/none.sock"],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert result.returncode == 1
    assert result.stderr.startswith("sp2p-server: cannot reach Redis at unix://")
    assert result.stderr.count("\n") == 1, result.stderr


def test_stats_totals_are_shared_by_every_node(redis_unix: RedisProc, tmp_path: Path) -> None:
    """stats.json holds the service's totals, whichever node writes it (not one worker's)."""
    from tests.server.helpers import live_server, pair

    (tmp_path / "stats.json").write_text('{"attemptedSends": 40, "completedSends": 7}')
    config = {
        "redis_url": redis_unix.url,
        "redis_prefix": "stats",
        "config_dir": tmp_path,
        "stats_interval": 0.1,
    }
    with live_server(config) as a, live_server(config) as b:
        for srv in (a, b, b):
            sender, receiver, _ = pair(srv.ws_url)
            sender.send("transfer-complete", {"bytesTransferred": 10})
            sender.send("connected")
            receiver.expect("connected")  # the count happened before this was relayed
            receiver.close()
            sender.expect("peer-left")
        path = tmp_path / "stats.json"
        expected = {"attemptedSends": 43, "connectedSends": 3, "completedSends": 10, "bytesTransferred": 30}
        assert wait_until(lambda: json.loads(path.read_text()) == expected, timeout=5), path.read_text()
        assert a.state.stats.snapshot() == b.state.stats.snapshot() == expected


@pytest.mark.slow
def test_a_node_stopping_cleanly_tells_peers_elsewhere(two_nodes: tuple[ServerProc, ServerProc]) -> None:
    a, b = two_nodes
    sender, sid, _ = hello(a.ws_url)
    receiver = join(b.ws_url, sid)
    receiver.expect("welcome")
    sender.expect("peer-joined")
    a.proc.send_signal(signal.SIGTERM)
    assert receiver.expect("peer-left", timeout=10) == {}
    assert sender.closed_within(10)
    assert a.proc.wait(20) == 0

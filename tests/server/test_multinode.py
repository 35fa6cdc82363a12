"""A real deployment on loopback: three sp2p-server nodes (two gevent workers each) on one
redis-server, behind a real haproxy on one port, with a real coturn.

haproxy balances round-robin per connection and appends X-Forwarded-For (the nodes run
with -trust-proxy), so clients from different 127.x source addresses count as different
IPs and consecutive connections land on different nodes. Which node served which side is
read from the nodes' logs, never assumed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import cli_env, finish, read_code, spawn, transfer
from tests.server.helpers import Client, hello, http_get, wait_until
from tests.server.test_turn import SECRET
from tests.support.coturn import Coturn
from tests.support.ports import LoopbackUrls, free_port
from tests.support.redis_proc import RedisProc
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HAPROXY_CFG = """
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option forwardfor
frontend sp2p
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    # every node unhealthy at once means the shared Redis is down: still route (to the
    # unchecked backups), so clients get the nodes' clear error rather than haproxy's 503
    option allbackups
{servers}
"""


def status_of(url: str) -> int:
    """The HTTP status, or 0 while nothing listens."""
    try:
        return http_get(url)[0]
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@dataclass
class Cluster(LoopbackUrls):
    redis: RedisProc
    nodes: list[ServerProc]
    haproxy: subprocess.Popen[bytes]
    port: int
    coturn: Coturn

    def node_of(self, session_id: str, role: str, *, since: list[int]) -> int:
        """Index of the node that logged this side of the session after `since` offsets
        (log lines are written in batches, within 50 ms)."""
        needle = f"session={session_id[:3]}… role={role}"
        found: list[int] = []

        def logged() -> bool:
            found[:] = [i for i, n in enumerate(self.nodes) if needle in n.stderr_text()[since[i] :]]
            return bool(found)

        if not wait_until(logged, timeout=5):
            raise AssertionError(f"no node logged {needle}")
        return found[0]

    def marks(self) -> list[int]:
        return [len(n.stderr_text()) for n in self.nodes]


def start_haproxy(tmp: Path, backends: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    servers = "\n".join(
        f"    server n{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1\n    server b{i} 127.0.0.1:{p} backup"
        for i, p in enumerate(backends)
    )
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, servers=servers))
    with (tmp / "haproxy.log").open("wb") as log:  # a file, not a pipe nobody reads (or closes)
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=log)
    assert wait_until(lambda: status_of(f"http://127.0.0.1:{port}/health") == 200, timeout=15)
    return proc, port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    redis_proc = RedisProc.start(tmp / "redis", port=0)
    coturn = Coturn(tmp, "--allow-loopback-peers", secret=SECRET)
    flags = (
        *NO_LIMIT_FLAGS,
        "-trust-proxy",
        "-miss-limit",
        "3",
        "-turn-servers",
        f"turn:127.0.0.1:{coturn.port}",
        "-turn-secret",
        SECRET,
        "-turn-delay",
        "1s",
        "-reaper-interval",
        "1s",
        "-handoff=false",  # each node stands for a host of its own: pairs stay split
    )
    nodes: list[ServerProc] = [None] * 3  # type: ignore[list-item]

    def boot(i: int) -> None:
        nodes[i] = start_server("-redis", redis_proc.url, "-workers", "2", *flags, timeout=60)

    threads = [threading.Thread(target=boot, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    haproxy = None
    try:
        assert all(nodes), "a node did not start"
        for node in nodes:
            assert wait_until(lambda node=node: len(children(node.proc.pid)) == 2, timeout=30)
        haproxy, port = start_haproxy(tmp, [n.port for n in nodes])
        yield Cluster(redis_proc, nodes, haproxy, port, coturn)
    finally:
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for node in nodes:
            if node is not None:
                node.stop()
        coturn.stop()
        redis_proc.stop()


def paired_across_nodes(cluster: Cluster, **kwargs: object) -> tuple[Client, Client, str, int, int]:
    """A sender and a receiver through haproxy that landed on different nodes."""
    for _ in range(6):
        since = cluster.marks()
        sender, sid, _ = hello(cluster.ws_url, **kwargs)  # type: ignore[arg-type]
        receiver = Client(cluster.ws_url, **kwargs)  # type: ignore[arg-type]
        receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "cli"})
        receiver.expect("welcome")
        sender.expect("peer-joined")
        s_node = cluster.node_of(sid, "sender", since=since)
        needle = f"session={sid[:3]}… role=receiver"
        assert wait_until(
            lambda needle=needle, since=since: (
                needle in "".join(n.stderr_text()[m:] for n, m in zip(cluster.nodes, since, strict=True))
            )
        )
        r_node = cluster.node_of(sid, "receiver", since=since)
        if s_node != r_node:
            return sender, receiver, sid, s_node, r_node
        sender.close()
        receiver.close()
    raise AssertionError("round-robin never split a pair over two nodes")


def test_cli_sender_and_receiver_on_different_nodes(cluster: Cluster, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env = cli_env(cluster.http_url, home)
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(3 << 20))
    for attempt in range(4):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        since = cluster.marks()
        s, r = transfer([str(src)], ["-output", str(out)], env)
        assert (s.rc, r.rc) == (0, 0), s.err + r.err
        assert (out / "payload.bin").read_bytes() == src.read_bytes()
        logs = ["".join(n.stderr_text()[m:]) for n, m in zip(cluster.nodes, since, strict=True)]
        senders = [i for i, text in enumerate(logs) if "role=sender" in text]
        receivers = [i for i, text in enumerate(logs) if "role=receiver" in text]
        if senders and receivers and senders != receivers:
            return
    raise AssertionError("the CLI pair never landed on two nodes")


def test_relay_retry_and_turn_credentials_through_coturn_across_nodes(cluster: Cluster) -> None:
    sender, receiver, _sid, _s, _r = paired_across_nodes(cluster, source_ip="127.0.0.21")
    asked = time.monotonic()
    receiver.send("relay-retry")
    creds = receiver.expect("turn-credentials", timeout=10)
    assert time.monotonic() - asked >= 0.5  # held back until -turn-delay after the join
    assert sender.expect("relay-retry", timeout=10) == {}  # then the retry reaches the other node
    server = creds["iceServers"][0]
    assert server["urls"] == [f"turn:127.0.0.1:{cluster.coturn.port}"]
    # the same credentials again on a repeated request (cached per session and side)
    receiver.send("relay-retry")
    assert receiver.expect("turn-credentials", timeout=10) == creds
    # and a real coturn allocates with them
    client = cluster.coturn.allocate(server["username"], server["credential"])
    output = client.communicate(timeout=30)[0].decode(errors="replace")
    assert client.returncode == 0, output


def test_failed_join_limit_holds_across_nodes(cluster: Cluster) -> None:
    """-miss-limit 3 per IP per minute: three misses spread over the nodes, then refused
    whichever node takes the fourth (and a different IP is unaffected)."""
    for _ in range(3):
        guess = Client(cluster.ws_url, source_ip="127.0.0.33")
        guess.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
        assert guess.expect("error")["code"] == "session_not_found"
    for _ in range(3):  # round-robin: each node refuses
        late = Client(cluster.ws_url, source_ip="127.0.0.33")
        late.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
        assert late.expect("error") == {
            "code": "rate_limited",
            "message": "too many failed attempts, try again later",
        }
    other = Client(cluster.ws_url, source_ip="127.0.0.34")
    other.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
    assert other.expect("error")["code"] == "session_not_found"


def test_redis_stopped_and_started_while_a_cli_sender_waits(cluster: Cluster, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env = cli_env(cluster.http_url, home)
    src = tmp_path / "f.txt"
    src.write_text("hello across a Redis restart\n")
    waiting = spawn(["send", str(src)], env)
    try:
        read_code(waiting)
        cluster.redis.stop()
        status, _, body = http_get(cluster.http_url + "/health")
        assert status == 503 and b"redis unreachable" in body, body
        refused = finish(spawn(["send", str(src)], env), timeout=60)
        assert refused.rc != 0
        assert "signaling server is busy" in refused.err, refused.err  # our server_busy, as the CLI words it
        assert waiting.poll() is None  # still waiting, nothing crashed
        cluster.redis.restart()
        assert wait_until(lambda: http_get(cluster.http_url + "/health")[0] == 200, timeout=20)
        gone = finish(waiting, timeout=60)  # the reaper finds its record gone
        assert gone.rc != 0 and "session lost by the server" in gone.err, gone.err
        out = tmp_path / "out"
        out.mkdir()
        s, r = transfer([str(src)], ["-output", str(out)], env)
        assert (s.rc, r.rc) == (0, 0), s.err + r.err
        assert (out / "f.txt").read_text() == "hello across a Redis restart\n"
        assert all(n.proc.poll() is None for n in cluster.nodes)
        tracebacks = [n.stderr_text() for n in cluster.nodes if "Traceback" in n.stderr_text()]
        assert not tracebacks, tracebacks[0][-3000:] if tracebacks else ""
    finally:
        if waiting.poll() is None:
            os.killpg(waiting.pid, signal.SIGKILL)
            waiting.wait()


def test_node_killed_mid_session(cluster: Cluster) -> None:
    """Last in this module: it kills a node. Its peers elsewhere hear peer-left within
    10 s; haproxy takes the node out and new sessions still pair."""
    sender, receiver, sid, s_node, _ = paired_across_nodes(cluster, source_ip="127.0.0.41")
    victim = cluster.nodes[s_node]
    killed = time.monotonic()
    for pid in [victim.proc.pid, *children(victim.proc.pid)]:
        os.kill(pid, signal.SIGKILL)
    victim.proc.wait(10)
    assert receiver.expect("peer-left", timeout=10) == {}
    assert time.monotonic() - killed < 10
    assert wait_until(  # log lines are written in batches, within 50 ms
        lambda: re.search(
            r"node gone: ending session=" + re.escape(sid[:3]),
            "".join(n.stderr_text() for i, n in enumerate(cluster.nodes) if i != s_node),
        )
    )
    for _ in range(4):  # whichever nodes haproxy still picks
        s2, sid2, _ = hello(cluster.ws_url, source_ip="127.0.0.42")
        r2 = Client(cluster.ws_url, source_ip="127.0.0.42")
        r2.send("join", {"version": 2, "sessionId": sid2})
        r2.expect("welcome")
        assert s2.expect("peer-joined") == {}
        s2.close()
        r2.close()

#!/usr/bin/env python3
"""Benchmark sp2p-server under gunicorn: session throughput, latency, idle capacity.

    python3 scripts/bench_server.py                      # starts its own server
    python3 scripts/bench_server.py --idle 1000 5000     # idle-sender levels to hold
    python3 scripts/bench_server.py --url http://127.0.0.1:8080 --worker-pid 1234

Phases (one server for the whole run):

1. baseline: bare WebSocket connect + close against the same server (the raw cost every
   session pays), and GET /health.
2. sessions: --sessions full sessions, --concurrency at a time: sender hello -> welcome,
   receiver join -> welcome + peer-joined, --messages relayed each way, close. Prints
   sessions/s and p50/p99 session latency, with the ratio to the baseline connect.
3. idle: for each level, hold that many idle senders (hello -> welcome, then silence)
   spread over loopback source addresses 127.0.x.y, then measure: the worker's RSS growth
   per idle session, a full session's latency while they are held, and /health.

Limits are lifted with flags (-max-sessions, -max-sessions-per-ip, -max-conns, ...), and
RLIMIT_NOFILE is raised for both processes. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.server_proc import ServerProc, start_server  # noqa: E402


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    except (ValueError, OSError):
        return soft


def source_ip(i: int) -> str:
    """Spread clients over 127.0.x.y (x: 1..250, y: 1..250) like many real users."""
    return f"127.0.{1 + (i // 250) % 250}.{1 + i % 250}"


class Conn:
    def __init__(self, ws_url: str, src: str | None = None, timeout: float = 30.0) -> None:
        options: dict[str, object] = {"timeout": timeout, "suppress_origin": True}
        if src is not None:
            import socket

            host, port = ws_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            options["socket"] = socket.create_connection(
                (host, int(port)), timeout=timeout, source_address=(src, 0)
            )
        self.ws = websocket.create_connection(ws_url, **options)

    def send(self, msg_type: str, payload: dict[str, object] | None = None) -> None:
        self.ws.send(json.dumps({"type": msg_type, "payload": payload or {}}))

    def expect(self, msg_type: str) -> dict[str, object]:
        while True:
            msg = json.loads(self.ws.recv())
            if msg["type"] == msg_type:
                payload: dict[str, object] = msg["payload"]
                return payload
            if msg["type"] == "error":
                raise RuntimeError(f"server error: {msg['payload']}")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort in a benchmark
            self.ws.close(timeout=1)


def one_session(ws_url: str, messages: int, src: str | None = None) -> float:
    start = time.perf_counter()
    sender = Conn(ws_url, src)
    sender.send("hello", {"version": 2, "clientType": "cli"})
    sid = sender.expect("welcome")["sessionId"]
    receiver = Conn(ws_url, src)
    receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "cli"})
    receiver.expect("welcome")
    sender.expect("peer-joined")
    for i in range(messages):
        sender.send("candidate", {"candidate": f"s{i}", "sdpMid": "0", "sdpMLineIndex": 0})
        receiver.expect("candidate")
        receiver.send("candidate", {"candidate": f"r{i}", "sdpMid": "0", "sdpMLineIndex": 0})
        sender.expect("candidate")
    receiver.close()
    sender.expect("peer-left")
    sender.close()
    return time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def baseline(http_url: str, ws_url: str, rounds: int = 200) -> tuple[float, float]:
    connects, healths = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        ws.close(timeout=1)
        connects.append(time.perf_counter() - t)
        t = time.perf_counter()
        with urllib.request.urlopen(http_url + "/health", timeout=10) as response:
            response.read()
        healths.append(time.perf_counter() - t)
    return statistics.median(connects), statistics.median(healths)


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def threads_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"Threads:\s+(\d+)", text)
    return int(match.group(1)) if match else 0


def worker_pid(master: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    pids = [int(p) for p in out.split()]
    if len(pids) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {pids}")
    return pids[0]


def hold_idle(ws_url: str, count: int, parallel: int) -> list[Conn]:
    held: list[Conn] = []
    lock = threading.Lock()

    def open_one(i: int) -> None:
        conn = Conn(ws_url, source_ip(i))
        conn.send("hello", {"version": 2, "clientType": "cli"})
        conn.expect("welcome")
        with lock:
            held.append(conn)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(open_one, range(count)))
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--worker-pid", type=int, help="its gunicorn worker (for RSS)")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--messages", type=int, default=3, help="relayed each way")
    parser.add_argument("--idle", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--open-parallel", type=int, default=32)
    args = parser.parse_args()

    fd_limit = raise_nofile()
    most = max([args.concurrency * 2, *args.idle]) + 200
    server: ServerProc | None = None
    if args.url:
        http_url = args.url.rstrip("/")
        ws_url = "ws" + http_url.removeprefix("http") + "/ws"
        pid = args.worker_pid
    else:
        server = start_server(
            "-max-sessions",
            str(most),
            "-max-sessions-per-ip",
            str(most),
            "-max-conns",
            str(2 * most),
            "-max-conns-per-ip",
            str(2 * most),
            "-rate-limit",
            "0",
            "-miss-limit",
            "0",
            "-ping-interval",
            "300s",
            "-hello-timeout",
            "60s",
        )
        http_url, ws_url = server.http_url, server.ws_url
        time.sleep(0.5)
        pid = worker_pid(server.proc.pid)
    print(f"server {http_url}  worker pid {pid}  client fd limit {fd_limit}")
    try:
        connect, health = baseline(http_url, ws_url)
        print(f"baseline: ws connect+close p50 {connect * 1e3:.2f} ms, GET /health p50 {health * 1e3:.2f} ms")

        one_session(ws_url, args.messages)  # warm up
        alone = [one_session(ws_url, args.messages) for _ in range(100)]
        print(
            f"one session at a time (100): p50 {statistics.median(alone) * 1e3:.1f} ms, "
            f"p99 {percentile(alone, 99) * 1e3:.1f} ms "
            f"= {statistics.median(alone) / connect:.1f}x a bare ws connect "
            f"(a session makes two)"
        )
        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = list(
                pool.map(lambda i: one_session(ws_url, args.messages, source_ip(i)), range(args.sessions))
            )
        elapsed = time.perf_counter() - start
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(
            f"sessions: {args.sessions} ({args.concurrency} concurrent, "
            f"{args.messages} relayed each way): {args.sessions / elapsed:.0f} sessions/s, "
            f"latency under that load p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
        )

        for level in args.idle:
            before = rss_kib(pid) if pid else 0
            t = time.perf_counter()
            held = hold_idle(ws_url, level, args.open_parallel)
            opened = time.perf_counter() - t
            time.sleep(2.0)
            after = rss_kib(pid) if pid else 0
            busy = [one_session(ws_url, args.messages) for _ in range(50)]
            t = time.perf_counter()
            with urllib.request.urlopen(http_url + "/health", timeout=10) as response:
                response.read()
            health_ms = (time.perf_counter() - t) * 1e3
            per = (after - before) / level if pid else float("nan")
            print(
                f"idle {level}: held {len(held)} idle senders (opened in {opened:.1f} s, "
                f"{len(held) / opened:.0f}/s), worker RSS {before / 1024:.0f} -> "
                f"{after / 1024:.0f} MiB = {per:.0f} KiB per idle session, "
                f"threads {threads_of(pid) if pid else '?'}; meanwhile a session "
                f"p50 {statistics.median(busy) * 1e3:.1f} ms "
                f"p99 {percentile(busy, 99) * 1e3:.1f} ms, /health {health_ms:.1f} ms"
            )
            for conn in held:
                conn.close()
            time.sleep(2.0)
    finally:
        if server is not None:
            server.stop(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

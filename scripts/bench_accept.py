#!/usr/bin/env python3
"""What a new connection costs a server with several workers: wake-ups, accepts, CPU.

    flock /tmp/bench.lock python3 scripts/bench_accept.py --target ours,workers=4,redis \\
        --target ours,workers=4,redis,tree=/tmp/main-tree --rounds 3
    python3 scripts/bench_accept.py --target ours --target ours,workers=2,redis --batches 20

For every round and target (interleaved in that order), on a fresh server: --batches rounds
of --exchanges concurrent full signalling exchanges (scripts/bench_server_load.exchange: two
new WebSocket connections each, every message checked), nothing else held. Per exchange,
summed over the server's worker processes: context switches (from /proc, voluntary and
not), CPU milliseconds, and, with perf, accept4 calls that returned a connection and ones
that found none (EAGAIN: a worker woken for a connection another took). Then how the
accepted connections spread over the workers, exchange p50/p99, and with Redis the PUBLISH
commands per exchange: a message to a peer on another worker goes through Redis, one to a
peer on the same worker does not, so it shows how often both ends of an exchange landed on
one worker (here they connect milliseconds apart from one client unless --gap spaces them;
real peers connect from different places at different times, and land on one of four workers
a quarter of the time), and the Lua scripts (the store's calls) per exchange.

Figures only, nothing asserted; the machine is shared, so quote the load (printed) and
compare medians over --rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server_load import exchange, raise_nofile  # noqa: E402
from bench_server_targets import Running, TargetSpec, parse_target, process_tree, start_target  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    switches: int
    cpu_s: float


def sample(pids: list[int]) -> Sample:
    switches = ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    switches += int(line.split()[1])
            stat = Path(f"/proc/{pid}/stat").read_text()
            ticks += sum(int(v) for v in stat[stat.rindex(")") + 2 :].split()[11:13])
    return Sample(switches, ticks / _CLK_TCK)


class AcceptCounter:
    """perf counting accept4 returns per worker: [failed, succeeded] by pid."""

    def __init__(self, pids: list[int]) -> None:
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "--per-thread", "-p", ",".join(map(str, pids)),
             "-e", "syscalls:sys_exit_accept4", "--filter", "ret < 0",
             "-e", "syscalls:sys_exit_accept4", "--filter", "ret >= 0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.5)  # perf attaches

    def stop(self) -> dict[int, list[int]]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        counts: dict[int, list[int]] = {}
        for line in err.splitlines():
            cells = line.split(",")
            if len(cells) < 4 or "accept4" not in cells[3] or "-" not in cells[0]:
                continue
            tid = int(cells[0].rsplit("-", 1)[1])
            value = int(cells[1]) if cells[1].isdigit() else 0
            counts.setdefault(tid, []).append(value)  # first block: failed; second: succeeded
        return counts


@dataclass
class Row:
    target: str
    exchanges: int = 0
    failed: int = 0
    switches: int = 0
    cpu_s: float = 0.0
    accepts_failed: int | None = None
    accepts_ok: int | None = None
    per_worker: list[int] = field(default_factory=list)
    publishes: int | None = None
    #: Lua scripts run (the store's calls: create, join, end...)
    scripts: int | None = None
    #: receivers moved to their sender's worker, and offers made (server.handoff)
    moved: int | None = None
    offered: int | None = None
    times: list[float] = field(default_factory=list)

    def per_exchange(self, value: float) -> float:
        return value / max(1, self.exchanges)


def publishes(running: Running) -> int | None:
    """PUBLISH commands the target's redis-server ran so far (None: no Redis of ours)."""
    return redis_calls(running, "publish")


def redis_calls(running: Running, command: str) -> int | None:
    """`command`s the target's redis-server ran so far (None: no Redis of ours)."""
    redis = next((p for p in running.procs if "redis-server" in str(p.args)), None)
    if redis is None:
        return None
    argv = [str(a) for a in redis.args]
    port = argv[argv.index("--port") + 1]
    info = subprocess.run(["redis-cli", "-p", port, "INFO", "commandstats"],
                          capture_output=True, text=True, timeout=10).stdout
    for line in info.splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def handoffs(running: Running) -> tuple[int, int] | None:
    """Receivers the target's nodes moved to their sender's worker so far, and offers made
    (server.handoff); None: none of ours (no such metric)."""
    found = None
    for url in running.http_urls:
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("sp2p_handoffs_total{"):
                    count = int(float(line.split()[-1]))
                    moved, offered = found or (0, 0)
                    found = (moved + count * ('outcome="moved"' in line), offered + count)
    return found


def workers_of(running: Running, expected: int, timeout: float = 30.0) -> list[int]:
    """The worker processes (the master's children), once all `expected` are up."""
    deadline = time.monotonic() + timeout
    while True:
        tree = process_tree(running.roots)
        workers = [pid for pid in tree if pid not in running.roots]
        if len(workers) >= expected or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


async def run_batches(url: str, batches: int, concurrent: int, gap: float, row: Row) -> None:
    for batch in range(batches):
        results = await asyncio.gather(
            *(exchange(url, url, batch * concurrent + i, gap=gap) for i in range(concurrent)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                row.failed += 1
            else:
                row.exchanges += 1
                row.times.append(result.total)


def measure_round(spec: TargetSpec, args: argparse.Namespace) -> Row:
    row = Row(spec.label)
    running = start_target(spec, 1000 + args.exchanges * 4, [])
    try:
        workers = workers_of(running, (spec.workers or 1) * spec.nodes)
        time.sleep(args.settle)
        counter = AcceptCounter(workers) if args.perf else None
        published = publishes(running)
        scripted = redis_calls(running, "evalsha")
        before = sample(workers)
        asyncio.run(run_batches(running.ws_urls[0], args.batches, args.exchanges, args.gap / 1000, row))
        after = sample(workers)
        if published is not None:
            row.publishes = (publishes(running) or 0) - published
        if scripted is not None:
            row.scripts = (redis_calls(running, "evalsha") or 0) - scripted
        row.switches, row.cpu_s = after.switches - before.switches, after.cpu_s - before.cpu_s
        if counter is not None:
            counts = counter.stop()
            per_pid = {pid: counts.get(pid, [0, 0]) for pid in workers}
            row.accepts_failed = sum(c[0] for c in per_pid.values())
            row.accepts_ok = sum(c[1] for c in per_pid.values() if len(c) > 1)
            row.per_worker = sorted((c[1] if len(c) > 1 else 0 for c in per_pid.values()), reverse=True)
        row.moved, row.offered = handoffs(running) or (None, None)  # (after perf: one more accept)
    finally:
        running.stop()
    return row


def report(rows: dict[str, list[Row]]) -> None:
    print()
    print(f"{'target':44} {'ctx sw/exch':>11} {'CPU ms/exch':>11} {'accept ok/exch':>14} "
          f"{'EAGAIN/exch':>11} {'pub/exch':>8} {'lua/exch':>8} {'moved/exch':>10} "
          f"{'p50 ms':>7} {'p99 ms':>7}  "
          "per worker (last round)")
    for label, runs in rows.items():
        def med(values: list[float]) -> float:
            return statistics.median(values) if values else float("nan")

        sw = med([r.per_exchange(r.switches) for r in runs])
        cpu = med([r.per_exchange(r.cpu_s) * 1000 for r in runs])
        ok = med([r.per_exchange(r.accepts_ok) for r in runs if r.accepts_ok is not None])
        eagain = med([r.per_exchange(r.accepts_failed) for r in runs if r.accepts_failed is not None])
        pub = med([r.per_exchange(r.publishes) for r in runs if r.publishes is not None])
        lua = med([r.per_exchange(r.scripts) for r in runs if r.scripts is not None])
        mov = med([r.per_exchange(r.moved) for r in runs if r.moved is not None])
        p50 = med([statistics.median(r.times) * 1000 for r in runs if r.times])
        p99 = med([statistics.quantiles(r.times, n=100)[98] * 1000 for r in runs if len(r.times) > 1])
        failed = sum(r.failed for r in runs)
        print(f"{label:44} {sw:11.2f} {cpu:11.2f} {ok:14.2f} {eagain:11.2f} {pub:8.2f} {lua:8.2f} "
              f"{mov:10.2f} "
              f"{p50:7.1f} {p99:7.1f}  "
              f"{runs[-1].per_worker}" + (f"  ({failed} exchanges failed)" if failed else ""))
        if runs[-1].offered:
            print(f"{'':44} handoff offers in the last round: {runs[-1].offered} (accepts include"
                  " the handoff links': one per pair of workers that handed off)")
        print(f"{'':44} rounds: " + ", ".join(
            f"{r.per_exchange(r.switches):.2f} sw / {r.per_exchange(r.cpu_s) * 1000:.2f} ms" for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", action="append", required=True, help="as scripts/bench_server.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20, help="batches of concurrent exchanges per round")
    parser.add_argument("--exchanges", type=int, default=50, help="concurrent exchanges per batch")
    parser.add_argument("--gap", type=float, default=0.0,
                        help="ms from the sender's welcome until its receiver dials (real peers: seconds)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after start before measuring")
    parser.add_argument("--no-perf", dest="perf", action="store_false", help="skip perf's accept4 counts")
    args = parser.parse_args()
    try:
        specs = [parse_target(t) for t in args.target]
    except ValueError as exc:
        parser.error(str(exc))
    if args.perf and shutil.which("perf") is None:
        parser.error("perf is not installed (apt-get install linux-perf) or use --no-perf")
    raise_nofile()
    rows: dict[str, list[Row]] = {spec.label: [] for spec in specs}
    for round_no in range(args.rounds):
        for spec in specs:
            load = os.getloadavg()[0]
            print(f"round {round_no + 1}/{args.rounds} {spec.label}  load {load:.2f}", flush=True)
            rows[spec.label].append(measure_round(spec, args))
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

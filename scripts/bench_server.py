#!/usr/bin/env python3
"""Benchmark a signalling server at scale: N idle senders, exchanges meanwhile, mass close.

    flock /tmp/bench.lock python3 scripts/bench_server.py --target ours --target go --idle 1000 10000
    python3 scripts/bench_server.py --target ours,workers=4,redis --idle 50000
    python3 scripts/bench_server.py --target ours --server-args '-ping-interval 60s' --idle 15000
    python3 scripts/bench_server.py --target ours,workers=2,redis,nodes=2 --idle 10000
    python3 scripts/bench_server.py --target 'url=http://127.0.0.1:8080,pid=1234' --idle 1000

For every round, level N and target (interleaved in that order), on a fresh server:

1. accept: N idle senders (hello -> welcome, then silence), each from its own 127.x.y.z
   source address, opened by asyncio load-generator processes (scripts/bench_server_load.py,
   at most --per-process each: a process here may open at most 20,000 files). Prints the
   connections accepted (and refusals by reason), the accept rate over the opening window,
   and the CPU the server spent accepting (also per connection: CPU time barely moves with
   the neighbours' load on a shared machine, rates and latencies do).
2. hold: after a settle pause, the server's RSS (total and growth per idle session), threads,
   all summed over its process tree (master and every worker; Redis shown apart); how many
   held senders the server closed before the mass close ("dropped while held").
3. exchanges: --exchange-rounds rounds of --exchanges concurrent full exchanges while the
   idle ones are held (sender hello + file-info, receiver join + crypto, crypto, offer,
   candidates, direct, answer, connected both ways, receiver closes, sender sees peer-left;
   every message checked in order): p50 / p99 latency and server CPU per exchange. With
   several nodes the sender and the receiver of an exchange use different nodes; with
   several workers the kernel spreads them over the workers.
4. mass close: every idle sender's TCP connection closed at once (--close-mode fin, like a
   load balancer going away); then how long the next session takes to pair, and for --watch
   seconds one probe session a second (gunicorn kills a stalled worker after 30 s). The
   server survived if every process is still the same one and /health answers. Worker
   timeouts and sessions ended because a node was taken for gone are counted in our log.

Figures only, nothing asserted; the machine is shared, so quote `uptime` (printed) and
prefer --rounds 3 medians for anything you compare.

One file past ~400 lines on purpose: the load generator's processes, the targets and the
report are one lab; its server launchers already live in bench_server_targets.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import select
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server_load import ExchangeTimes, Progress, exchange, raise_nofile, reason  # noqa: E402
from bench_server_probe import AfterClose, after_close, open_files  # noqa: E402
from bench_server_targets import (  # noqa: E402
    Metrics,
    Running,
    TargetSpec,
    healthy,
    kill_group,
    measure,
    parse_target,
    start_target,
)

LOAD = Path(__file__).resolve().parent / "bench_server_load.py"


class Generator:
    """One load-generator process and its JSON-lines replies (bounded waits only)."""

    def __init__(self, urls: list[str], first: int, count: int, args: argparse.Namespace) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(LOAD), "--urls", ",".join(urls), "--first", str(first),
             "--count", str(count), "--parallel", str(args.parallel), "--close-mode", args.close_mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self._buf = b""

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"load generator {self.proc.pid} silent for {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"load generator {self.proc.pid} exited ({self.proc.wait()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply


@dataclass
class Row:
    target: str
    n: int
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    accept_rate: float = 0.0
    cpu_accept: float = 0.0
    rss_base_kib: int = 0
    rss_kib: int = 0
    redis_kib: int | None = None
    threads: int = 0
    gen_cpu: float = 0.0
    exch: list[float] = field(default_factory=list)
    exch_failed: Counter[str] = field(default_factory=Counter)
    #: each exchange step's own times (bench_server_load.STEP_FROM), over all rounds
    exch_steps: dict[str, list[float]] = field(default_factory=dict)
    exch_client_cpu: list[float] = field(default_factory=list)  #: the exchanging client's CPU per round
    #: CPU time the hypervisor gave to other guests while the exchanges ran (all CPUs): a
    #: round slow all through (p50, CPU per exchange) with steal was the host's, not ours
    exch_steal: float = 0.0
    cpu_exchanges: float = 0.0  #: server CPU seconds over all exchange rounds
    redis_cpu_exchanges: float | None = None  #: redis-server's CPU seconds over them (Redis targets)
    log_events: Counter[str] = field(default_factory=Counter)
    dropped: int = 0
    after: AfterClose = field(default_factory=AfterClose)
    survived: bool = False
    threads_after: int = 0
    rss_after_kib: int = 0

    @property
    def kib_per_session(self) -> float:
        return (self.rss_kib - self.rss_base_kib) / max(1, self.accepted)

    @property
    def cpu_ms_per_conn(self) -> float:
        """Server CPU per accepted idle sender: unlike rates, barely moved by a busy machine."""
        return self.cpu_accept / max(1, self.accepted) * 1e3

    @property
    def cpu_ms_per_exchange(self) -> float:
        return self.cpu_exchanges / max(1, len(self.exch)) * 1e3

    @property
    def redis_ms_per_exchange(self) -> float | None:
        if self.redis_cpu_exchanges is None:
            return None
        return self.redis_cpu_exchanges / max(1, len(self.exch)) * 1e3

    @property
    def p50_ms(self) -> float:
        return percentile(self.exch, 50) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.exch, 99) * 1e3


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


class Exchanges:
    """Runs exchanges with fresh source addresses for the whole benchmark."""

    def __init__(self) -> None:
        self.next_index = 0

    async def _batch(
        self, urls: list[str], progresses: list[Progress], timeout: float
    ) -> list[ExchangeTimes | BaseException]:
        first, self.next_index = self.next_index, self.next_index + len(progresses)
        # sender on one node, receiver on the next: pairing across nodes when there are several
        jobs = [
            exchange(urls[i % len(urls)], urls[(i + 1) % len(urls)], first + i, timeout, progress)
            for i, progress in enumerate(progresses)
        ]
        return await asyncio.gather(*jobs, return_exceptions=True)

    def run(
        self, urls: list[str], count: int, timeout: float = 10.0, steps: dict[str, list[float]] | None = None
    ) -> list[ExchangeTimes | BaseException]:
        """`count` exchanges at once; each finished step's time is added to `steps`."""
        progresses = [Progress() for _ in range(count)]
        results = asyncio.run(self._batch(urls, progresses, timeout))
        for progress in progresses if steps is not None else ():
            for stage, seconds in progress.steps().items():
                steps.setdefault(stage, []).append(seconds)
        return results

    def probe(self, urls: list[str], timeout: float, progress: Progress) -> ExchangeTimes | BaseException:
        """One exchange, noting its steps in `progress`."""
        index, self.next_index = self.next_index, self.next_index + 1

        async def one() -> ExchangeTimes:
            return await exchange(urls[0], urls[1 % len(urls)], index, timeout, progress)

        try:
            return asyncio.run(one())
        except Exception as exc:  # noqa: BLE001 - counted by the step it was stuck at
            return exc


def _metrics(running: Running) -> tuple[Metrics, int | None]:
    redis = measure((running.redis_pid,)).rss_kib if running.redis_pid else None
    return measure(running.roots), redis


def steal_seconds() -> float:
    """CPU seconds stolen from this machine by its hypervisor so far, all CPUs (/proc/stat)."""
    # the first line: cpu user nice system idle iowait irq softirq steal ...
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(running: Running) -> float | None:
    return measure((running.redis_pid,)).cpu_s if running.redis_pid else None


def run_level(spec: TargetSpec, n: int, args: argparse.Namespace, exchanges: Exchanges) -> Row:
    row = Row(spec.label, n)
    capacity = n + args.exchanges * 2 + 1000
    running = start_target(spec, capacity, shlex.split(args.server_args))
    generators: list[Generator] = []
    try:
        time.sleep(args.settle)
        base, _ = _metrics(running)
        row.rss_base_kib = base.rss_kib
        per = min(args.per_process, math.ceil(n / 2))  # two at least: the client side needs both cores
        for first in range(0, n, per):
            generators.append(Generator(running.ws_urls, first, min(per, n - first), args))
        for gen in generators:
            gen.reply(60)  # ready: imported, file limit raised
        for gen in generators:
            gen.send("open")
        opened = [gen.reply(args.timeout + n / 25) for gen in generators]  # >= 25 conn/s overall
        accepted, _ = _metrics(running)
        row.accepted = sum(int(r["opened"]) for r in opened)
        for r in opened:
            row.refused.update(r["errors"])
        window = max(float(r["end"]) for r in opened) - min(float(r["start"]) for r in opened)
        row.accept_rate = row.accepted / window if window > 0 else math.nan
        row.cpu_accept = accepted.cpu_s - base.cpu_s
        row.gen_cpu = sum(float(r["cpu"]) for r in opened)

        time.sleep(args.settle)
        held, row.redis_kib = _metrics(running)
        redis_cpu = _redis_cpu(running)
        row.rss_kib, row.threads = held.rss_kib, held.threads
        steal = steal_seconds()
        for _ in range(args.exchange_rounds):
            cpu = time.process_time()
            results = exchanges.run(running.ws_urls, args.exchanges, steps=row.exch_steps)
            row.exch_client_cpu.append(time.process_time() - cpu)
            for result in results:
                if isinstance(result, ExchangeTimes):
                    row.exch.append(result.total)
                else:
                    row.exch_failed[reason(result)] += 1
        row.cpu_exchanges = measure(running.roots).cpu_s - held.cpu_s
        row.exch_steal = steal_seconds() - steal
        if redis_cpu is not None:
            row.redis_cpu_exchanges = (_redis_cpu(running) or 0.0) - redis_cpu

        # what the server holds besides the idle senders' sockets: the teardown is done when
        # it is back to that (files first opened while holding them count: a worker's
        # metrics files, its handoff links, its Redis connections)
        held_files = open_files(running.roots)[0] if running.roots else None
        for gen in generators:
            gen.send("close")
        closed = [gen.reply(60) for gen in generators]
        row.dropped = sum(int(r["dropped"]) for r in closed)
        base_files = None if held_files is None else held_files - (row.accepted - row.dropped)
        closed_at = max(float(r["at"]) for r in closed)
        urls = running.ws_urls
        row.after = after_close(
            running.roots, base_files, closed_at, args.watch, lambda t, p: exchanges.probe(urls, t, p)
        )
        after, _ = _metrics(running)
        row.threads_after, row.rss_after_kib = after.threads, after.rss_kib
        row.log_events = running.log_events()
        row.survived = (
            running.alive() and after.pids == held.pids and all(healthy(u) for u in running.http_urls)
        )
        for gen in generators:
            gen.proc.wait(10)
        return row
    finally:
        for gen in generators:
            kill_group(gen.proc)
        running.stop()


def describe(row: Row) -> str:
    refused = f" refused {dict(row.refused)}" if row.refused else ""
    failed = f" failed {dict(row.exch_failed)}" if row.exch_failed else ""
    redis = f", redis {row.redis_kib / 1024:.0f} MiB" if row.redis_kib is not None else ""
    client_cpu = statistics.median(row.exch_client_cpu or [0.0])
    redis_cpu = row.redis_ms_per_exchange
    redis_exch = f" + redis {redis_cpu:.1f}" if redis_cpu is not None else ""
    return (
        f"{row.target} N={row.n}: accepted {row.accepted}{refused} at {row.accept_rate:.0f}/s "
        f"(server CPU {row.cpu_accept:.1f} s = {row.cpu_ms_per_conn:.2f} ms/conn, "
        f"generators {row.gen_cpu:.1f} s); "
        f"RSS {row.rss_kib / 1024:.0f} MiB = {row.kib_per_session:.1f} KiB/session{redis}, "
        f"threads {row.threads}; exchanges p50 {row.p50_ms:.0f} ms p99 {row.p99_ms:.0f} ms "
        f"({len(row.exch)} ok{failed}, server CPU {row.cpu_ms_per_exchange:.1f}{redis_exch} ms/exchange, "
        f"client CPU {client_cpu * 1e3:.0f} ms per round, steal {row.exch_steal * 1e3:.0f} ms; "
        f"steps p50/p99 ms: {_steps(row)}); "
        f"idle dropped while held {row.dropped}; after mass close: "
        f"{'up' if row.survived else 'DOWN/RESTARTED'}, {row.after.describe()}, threads {row.threads_after}, "
        f"RSS {row.rss_after_kib / 1024:.0f} MiB"
        + "".join(f"; server log: {name} {count}" for name, count in row.log_events.items())
    )


def _steps(row: Row) -> str:
    return ", ".join(
        f"{stage} {percentile(times, 50) * 1e3:.0f}/{percentile(times, 99) * 1e3:.0f}"
        for stage, times in row.exch_steps.items()
    )


COLUMNS: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("accepted", lambda r: f"{r.accepted}"),
    ("accept/s", lambda r: f"{r.accept_rate:.0f}"),
    ("CPU ms/conn", lambda r: f"{r.cpu_ms_per_conn:.2f}"),
    ("RSS MiB", lambda r: f"{r.rss_kib / 1024:.0f}"),
    ("KiB/sess", lambda r: f"{r.kib_per_session:.1f}"),
    ("threads", lambda r: f"{r.threads}"),
    ("exch p50/p99 ms", lambda r: f"{r.p50_ms:.0f}/{r.p99_ms:.0f}"),
    ("CPU ms/exch", lambda r: f"{r.cpu_ms_per_exchange:.1f}"),
    ("mass close", lambda r: "up" if r.survived else "DOWN"),
    ("pair after ms", lambda r: _ms(r.after.first_paired)),
    ("worst pair ms", lambda r: _ms(r.after.worst_paired)),
    ("probes ok", lambda r: f"{len(r.after.probes) - sum(r.after.stuck.values())}/{len(r.after.probes)}"),
)


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.0f}" if seconds is not None else "fail"


#: figures taken as the median over rounds (the rest come from the round with the median p99)
_MEDIAN_FIELDS = (
    "accepted",
    "accept_rate",
    "cpu_accept",
    "cpu_exchanges",
    "rss_kib",
    "rss_base_kib",
    "threads",
)


def median_row(rows: list[Row]) -> Row:
    """Median of each figure over the rounds (the row shown stands for all of them)."""
    pick = sorted(rows, key=lambda r: r.p99_ms if not math.isnan(r.p99_ms) else math.inf)[len(rows) // 2]
    merged = Row(rows[0].target, rows[0].n)
    merged.__dict__.update(pick.__dict__)
    for name in _MEDIAN_FIELDS:
        setattr(merged, name, statistics.median(getattr(r, name) for r in rows))
    merged.survived = all(r.survived for r in rows)
    return merged


def print_table(rows: list[Row], targets: list[str], levels: list[int]) -> None:
    print("\n| target | N | " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    medians: dict[tuple[str, int], Row] = {}
    for n in levels:
        for target in targets:
            mine = [r for r in rows if r.target == target and r.n == n]
            if mine:
                medians[target, n] = row = median_row(mine)
                print(f"| {target} | {n:,} | " + " | ".join(cell(row) for _, cell in COLUMNS) + " |")
    if len(targets) > 1:
        print(f"\n{targets[0]} = 1 (same run): accept rate, RSS, server CPU per connection / exchange, p99")
        for n in levels:
            base = medians.get((targets[0], n))
            for target in targets[1:]:
                other = medians.get((target, n))
                if base and other:
                    print(
                        f"  N={n:,} {target}: accept x{_ratio(other.accept_rate, base.accept_rate)}, "
                        f"RSS x{_ratio(other.rss_kib, base.rss_kib)}, "
                        f"CPU/conn x{_ratio(other.cpu_ms_per_conn, base.cpu_ms_per_conn)}, "
                        f"CPU/exchange x{_ratio(other.cpu_ms_per_exchange, base.cpu_ms_per_exchange)}, "
                        f"p99 x{_ratio(other.p99_ms, base.p99_ms)}"
                    )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target",
        action="append",
        help="ours | ours,workers=W,redis[,nodes=K] | go | url=URL[;URL],pid=P[;P]",
    )
    parser.add_argument("--idle", type=int, nargs="+", default=[1000, 10000], help="levels N")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--exchanges", type=int, default=50, help="concurrent exchanges per round")
    parser.add_argument("--exchange-rounds", type=int, default=3)
    parser.add_argument("--per-process", type=int, default=4000, help="idle senders per generator")
    parser.add_argument("--parallel", type=int, default=64, help="handshakes in flight per generator")
    parser.add_argument("--timeout", type=float, default=30.0, help="per connection")
    parser.add_argument("--settle", type=float, default=2.0, help="pause before measuring")
    parser.add_argument("--watch", type=float, default=35.0, help="seconds of probes after the mass close")
    parser.add_argument("--close-mode", choices=["fin", "rst", "ws"], default="fin")
    parser.add_argument(
        "--server-args", default="", help="extra flags for our server, e.g. '-ping-interval 60s'"
    )
    args = parser.parse_args()
    try:
        specs = [parse_target(t) for t in args.target or ["ours"]]
    except ValueError as exc:
        parser.error(str(exc))
    if not 0 < args.per_process <= 19_000:
        parser.error("--per-process must be 1..19000 (a process may open at most 20,000 files)")

    # SIGTERM, and SIGINT even when started in the background (where it is ignored), unwind
    # through the finally blocks that stop the servers and the load generators
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{uptime}; {os.cpu_count()} cores; client file limit {raise_nofile()}", flush=True)
    rows: list[Row] = []
    exchanges = Exchanges()
    for round_no in range(args.rounds):
        for n in args.idle:
            for spec in specs:
                try:
                    row = run_level(spec, n, args, exchanges)
                except (RuntimeError, TimeoutError, OSError) as exc:
                    print(f"round {round_no + 1} {spec.label} N={n}: failed: {exc}", flush=True)
                    continue
                rows.append(row)
                print(f"round {round_no + 1} {describe(row)}", flush=True)
    print_table(rows, [s.label for s in specs], args.idle)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n{uptime}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())

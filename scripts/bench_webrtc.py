#!/usr/bin/env python3
"""Throughput and CPU of WebRTC on loopback: real CLI pairs (ours, Go's), and the bare channel.

CLI pairs (--pairs, default all four; scripts/webrtc_cli_pairs.py runs them):

  ours     our `sp2p send` -> our `sp2p receive`
  go       the Go original's CLI (../shared/reference/sp2p, pion) at both ends
  go2ours  Go sender -> our receiver
  ours2go  our sender -> Go receiver
  base, go2base, base2go   the same with our CLI from --base DIR (another checkout: before/after)

all with `-transport webrtc -compress 0` through one real sp2p-server, --size MiB of random
data from tmpfs to tmpfs. Printed per pair: MB/s median (best) over --runs interleaved rounds,
CPU seconds per GiB of the sender, the receiver and both (medians), and the ratio to Go -> Go.

Transport modes (--modes, none by default), the data channel without the CLI around it:

Each run moves --size MiB from a sender to a receiver, each peer in its own process
(as in real use), signaling relayed through multiprocessing queues. Figures are
receiver-side: first byte to last byte.

  stock    bare aiortc, one asyncio loop per process, 256 KiB dc.send() calls paced
           by bufferedAmount / bufferedamountlow (the usual aiortc idiom); aiortc as shipped
  stock1   the same with both peers on one loop in one process (aiortc's examples'
           layout; for reference, not the baseline: the peers share one core)
  channel  sp2p.net.webrtc.WebRTCPeer + its blocking Channel, aiortc as shipped
           (SP2P_WEBRTC_STOCK=1): the cost of our threading layer alone
  tuned    the same with sp2p.net.webrtc_sctp's patches: what sp2p ships

With --loss PCT (root) the runs happen in a network namespace whose UDP traffic loses
PCT % of its packets at random (iptables statistic match), to compare loss recovery.

With --mtu N (root) everything runs in a network namespace whose loopback carries at most N
bytes per packet (1500: an Ethernet path such as bench_link's 70 ms link, where the CLIs'
8 KiB packet probe fails and they probe for what the path carries).

With --runs N the modes run N rounds in turn (load drifts hit all alike); medians shown.

Usage: python3 scripts/bench_webrtc.py [--size MiB] [--runs N] [--pairs ours,go,go2ours,ours2go]
       [--modes stock,stock1,channel,tuned] [--loss PCT] [--mtu BYTES]
       [--profile sender|receiver] (cProfile of one side's asyncio thread, last mode only)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing as mp
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.benchkit.aiortc_peer import (  # noqa: E402 - the peer bench_link runs too
    TIMEOUT,
    MessageCounter,
    channel_peer,
    paced_send,
    stock_peer,
)

# -- stock aiortc on one loop -------------------------------------------------------------


async def _stock_one_loop(total: int) -> tuple[float, float, int]:
    from aiortc import RTCConfiguration, RTCPeerConnection

    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = a.createDataChannel("sp2p")
    counter = MessageCounter(total)
    counter.attach(b)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await opened.wait()
    await paced_send(channel, total)
    await asyncio.wait_for(counter.full.wait(), TIMEOUT)
    last = time.monotonic()
    await a.close()
    await b.close()
    return counter.first, last, counter.got


def _stock_one_process(total: int, results: Any) -> None:
    os.environ["SP2P_WEBRTC_STOCK"] = "1"
    results.put(asyncio.run(_stock_one_loop(total)))


def _peer_main(
    mode: str, role: str, total: int, inbox: Any, outbox: Any, results: Any, profile: bool
) -> None:
    if mode != "tuned":
        os.environ["SP2P_WEBRTC_STOCK"] = "1"
    hook = os.environ.get("BENCH_HOOK")  # a module with install(), for ad-hoc counters
    if hook:
        sys.path.insert(0, os.path.dirname(hook))
        __import__(os.path.basename(hook).removesuffix(".py")).install()
    profiler = cProfile.Profile() if profile else None
    if mode == "stock":
        if profiler:
            profiler.enable()
        asyncio.run(stock_peer(role, total, inbox, outbox, results))
        if profiler:
            profiler.disable()
    else:
        channel_peer(role, total, inbox, outbox, results, profiler)
    if profiler:
        sort = os.environ.get("BENCH_PROFILE_SORT", "tottime")
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(sort).print_stats(30)


def run_once(mode: str, total: int, profile: str | None) -> float:
    ctx = mp.get_context("spawn")
    to_receiver, to_sender, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    if mode == "stock1":
        proc = ctx.Process(target=_stock_one_process, args=(total, results))
        proc.start()
        first, last, got = results.get(timeout=TIMEOUT)
        proc.join(30)
        return float(got / (last - first) / 1e6)
    sender = ctx.Process(
        target=_peer_main, args=(mode, "sender", total, to_sender, to_receiver, results, profile == "sender")
    )
    receiver = ctx.Process(
        target=_peer_main,
        args=(mode, "receiver", total, to_receiver, to_sender, results, profile == "receiver"),
    )
    sender.start()
    receiver.start()
    try:
        first, last, got = results.get(timeout=TIMEOUT)
    finally:
        for proc in (sender, receiver):
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return got / (last - first) / 1e6


def run_in_netns(loss: float, mtu: int | None, argv: list[str]) -> int:
    """Re-run this script inside the tests' shaped namespace (tests/net/webrtc_netns.py): `loss`
    % of UDP datagrams dropped where they arrive, at most `mtu` bytes per packet (None:
    loopback's 64 KiB)."""
    from tests.net.webrtc_netns import shaped_netns

    with shaped_netns(loss=loss / 100, mtu=mtu) as ns:
        inner = _without(argv, "--loss", "--mtu")
        cmd = ["ip", "netns", "exec", ns, sys.executable, __file__, *inner, "--inside-netns"]
        return subprocess.run(cmd, check=False).returncode


def _without(argv: list[str], *options: str) -> list[str]:
    """`argv` minus each `option` and its value (given as "--opt N" or "--opt=N")."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            out.append(arg)
    return out


def run_pairs(pairs: list[str], size_mib: int, runs: int, base: Path | None) -> None:
    """The CLI rows: every pair once per round, rounds interleaved; medians printed."""
    import tempfile

    from webrtc_cli_pairs import GO_CLI, LABELS, PairRun, run_pair, sha256_file

    from tests.e2e.harness import cli_env
    from tests.support.server_proc import NO_LIMIT_FLAGS, start_server

    unknown = [p for p in pairs if p not in LABELS]
    if unknown:
        raise SystemExit(f"unknown pair(s): {', '.join(unknown)} (known: {', '.join(LABELS)})")
    if any("go" in p for p in pairs) and not GO_CLI.exists():
        raise SystemExit(f"the Go reference CLI is missing: {GO_CLI}")
    results: dict[str, list[PairRun]] = {pair: [] for pair in pairs}
    failures: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        work = Path(tmp)
        src = work / "random.bin"
        with src.open("wb") as f:
            for _ in range(size_mib):
                f.write(os.urandom(1 << 20))
        digest = sha256_file(src)
        (work / "home" / ".config").mkdir(parents=True)
        server = start_server(*NO_LIMIT_FLAGS)
        try:
            env = cli_env(server.http_url, work / "home")
            for _ in range(runs):
                for pair in pairs:
                    try:
                        results[pair].append(run_pair(pair, src, digest, env, work, base))
                    except SystemExit as exc:  # a failed transfer is a result too: say so, go on
                        failures[pair] = failures.get(pair, 0) + 1
                        print(f"  {pair}: {str(exc).splitlines()[0]}", flush=True)
        finally:
            server.stop()
    gib = size_mib / 1024
    print(f"{'pair':13s} {'MB/s median (best)':>19s} {'CPU s/GiB: sender':>18s} {'receiver':>9s} "
          f"{'both':>6s} {'vs Go':>6s}")
    base = statistics.median(r.mbps for r in results["go"]) if results.get("go") else 0.0
    for pair in pairs:
        rows = results[pair]
        failed = f"   ({failures[pair]} of {runs} runs failed)" if pair in failures else ""
        if not rows:
            print(f"{LABELS[pair]:13s} no completed run{failed}")
            continue
        mbps = statistics.median(r.mbps for r in rows)
        cpu_s = statistics.median(r.cpu_sender for r in rows) / gib
        cpu_r = statistics.median(r.cpu_receiver for r in rows) / gib
        both = statistics.median(r.cpu_sender + r.cpu_receiver for r in rows) / gib
        ratio = f"{mbps / base:6.2f}" if base else "     -"
        print(f"{LABELS[pair]:13s} {mbps:9.1f} ({max(r.mbps for r in rows):5.1f})   {cpu_s:18.1f} "
              f"{cpu_r:9.1f} {both:6.1f} {ratio}{failed}", flush=True)
    for pair in pairs:
        print(f"  {pair} runs MB/s: " + ", ".join(f"{r.mbps:.1f}" for r in results[pair]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200, help="MiB per run (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds; medians shown")
    parser.add_argument("--pairs", default="ours,go,go2ours,ours2go", help="CLI pairs (empty: none)")
    parser.add_argument("--base", type=Path, help="another sp2p checkout for the base, go2base and "
                        "base2go pairs (before/after in one run)")
    parser.add_argument("--modes", default="", help="transport modes: stock,stock1,channel,tuned")
    parser.add_argument("--profile", choices=("sender", "receiver"))
    parser.add_argument("--loss", type=float, default=0.0, help="percent of UDP packets dropped")
    parser.add_argument("--mtu", type=int, help="loopback MTU of a namespace to run in (root)")
    parser.add_argument("--inside-netns", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.loss or args.mtu) and not args.inside_netns:
        print(f"random UDP loss: {args.loss:g} %, loopback MTU {args.mtu or 'unchanged'}", flush=True)
        return run_in_netns(args.loss, args.mtu, sys.argv[1:])
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    pairs = [p for p in args.pairs.split(",") if p]
    if pairs and not args.profile:
        run_pairs(pairs, args.size, args.runs, args.base)
    total = args.size * 1024 * 1024
    modes = [m for m in args.modes.split(",") if m]
    if args.profile:
        modes = modes[-1:]
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.runs):  # rounds interleave the modes, so load drifts hit all alike
        for mode in modes:
            rates[mode].append(run_once(mode, total, args.profile))
    figures: dict[str, float] = {}
    for mode in modes:
        figures[mode] = statistics.median(rates[mode])
        runs = ", ".join(f"{r:.1f}" for r in rates[mode])
        print(f"{mode:8s} {figures[mode]:7.1f} MB/s   (runs: {runs})", flush=True)
    base = figures.get("stock")
    if base:
        for mode in modes:
            if mode not in ("stock", "stock1"):
                print(f"{mode} / stock = {figures[mode] / base:.2f}x")
    if figures.get("stock1") and figures.get("tuned"):
        print(f"tuned / stock1 = {figures['tuned'] / figures['stock1']:.2f}x")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

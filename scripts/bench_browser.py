#!/usr/bin/env python3
"""Throughput of the browser UI on loopback, against raw data channels measured in the same run.

    python3 scripts/bench_browser.py [--mib 200] [--runs N] [--only NAME,...] [--profile]

Every row moves the same random file (or as many bytes) and is timed from the moment the data
channel is up (raw rows: channel open; sp2p rows: the CLI's "Connected via WebRTC" line) to the
verified end (SHA-256 of what was saved equals the source). MB/s means MiB/s.

  raw chromium<->chromium  two RTCPeerConnections in one Chromium page (browser ceiling)
  raw aiortc->chromium     bare aiortc (with sp2p's SCTP tuning) sends 256 KiB messages to a page:
                           the transport ceiling for cli->browser
  raw chromium->aiortc     the reverse: the ceiling for browser->cli
  cli->browser             `sp2p send` -> Chromium receive page, streamed (service-worker) download
  browser->cli             Chromium send page -> `sp2p receive`
  cli->cli webrtc          `sp2p send|receive -transport webrtc`
  browser->browser         send page -> receive page (both Chromium); timed from the click, so
                           it includes signalling, key exchange and ICE

--baseline-static DIR runs the page rows again in the same rounds with the web UI from DIR (e.g. an
older checkout's static/), shown as "<row> @base": before and after under the same load.
--baseline-tree DIR does the same for the CLI: the CLI rows again with the sp2p of the checkout DIR
(e.g. `git archive <commit> | tar -x -C DIR`), shown as "<row> @tree".
Ratios: each sp2p row against its raw ceiling, cli->browser and browser->cli also against raw
chromium<->chromium (issue 13's target: >= 0.8), and cli->browser against cli->cli webrtc.
CPU: seconds per GiB of every Chromium process (and of those the renderers) and of the sp2p CLI
processes, from /proc (scripts/benchkit/cpu.py), medians over the rounds.
With --runs N the rows are run N rounds in turn and the median (and range) is shown.
"udp drops" counts kernel UDP receive-buffer overflows (RcvbufErrors, IPv4 + IPv6) per run of the
row: each one costs the sender a loss recovery. --profile adds main-thread CPU profiles of the pages
in the first round (scripts/page_profile.py: self time by part and by function): the receive page
in cli->browser, the send page in browser->cli, both in browser->browser.
Uses Debian chromium and a real sp2p-server on 127.0.0.1; the CLI runs as in the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.benchkit.cpu import TreeCpu  # noqa: E402
from scripts.browser_raw import aiortc_peer_process, bench_raw_aiortc, bench_raw_chromium, rate  # noqa: E402
from scripts.page_profile import PageProfile  # noqa: E402
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server  # noqa: E402
from tests.web.browser import launch_chromium, new_context  # noqa: E402
from tests.web.cli import Cli, random_file  # noqa: E402
from tests.web.flows import NO_PICKERS, sha256_file, start_send, wait_outcome  # noqa: E402

CONNECTED = "Connected via WebRTC"


def udp_drops() -> int:
    """Kernel UDP receive-buffer overflows so far in this network namespace (IPv4 + IPv6)."""
    total = 0
    try:
        snmp = Path("/proc/net/snmp").read_text().splitlines()
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
        total += int(rows[1][rows[0].index("RcvbufErrors")])
        for line in Path("/proc/net/snmp6").read_text().splitlines():
            if line.startswith("Udp6RcvbufErrors"):
                total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return total


def since_connected(cli: Cli, fallback: float) -> float:
    return cli.line_time(CONNECTED) or fallback


Profiles = dict[str, list[str]]  # "which page, which row" -> printable profile lines


def bench_cli_to_browser(
    browser: Any, base: str, src: Path, mib: int, tmp: Path, profiles: Profiles | None,
    repo: Path | None = None,
) -> float:
    cli = Cli("send", "-server", base, str(src), repo=repo)
    ctx = new_context(browser)
    try:
        code = cli.wait_code()
        page = ctx.new_page()
        page.add_init_script(NO_PICKERS)
        page.goto(f"{base}/r#{code}")
        page.wait_for_selector("#save-btn:visible", timeout=60_000)
        prof = PageProfile(ctx, page) if profiles is not None else None
        downloads: list[Any] = []
        page.on("download", lambda d: downloads.append(d))
        clicked = time.monotonic()
        page.click("#save-btn")
        outcome = wait_outcome(page, timeout_ms=1_800_000)
        end = time.monotonic()
        if outcome != "done":
            raise RuntimeError(outcome)
        if prof is not None and profiles is not None:
            profiles["receive page, cli->browser"] = prof.stop()
        if cli.wait(60) != 0:
            raise RuntimeError(cli.output()[-2000:])
        saved = tmp / "from-cli.bin"
        downloads[0].save_as(saved)
        if sha256_file(saved) != sha256_file(src):
            raise RuntimeError("hash mismatch")
        saved.unlink()
        return rate(mib, end - since_connected(cli, clicked))
    finally:
        ctx.close()
        cli.stop()


def bench_browser_to_cli(
    browser: Any, base: str, src: Path, mib: int, tmp: Path, profiles: Profiles | None,
    repo: Path | None = None,
) -> float:
    out = Path(tempfile.mkdtemp(prefix="b2c-", dir=tmp))
    ctx = new_context(browser)
    receiver: Cli | None = None
    try:
        page = ctx.new_page()
        url = start_send(page, base, str(src))
        prof = PageProfile(ctx, page) if profiles is not None else None
        started = time.monotonic()
        receiver = Cli("receive", "-server", base, "-output", str(out), url.split("#", 1)[1], repo=repo)
        if receiver.wait(1800) != 0:
            raise RuntimeError(receiver.output()[-2000:])
        end = time.monotonic()
        if wait_outcome(page) != "done":
            raise RuntimeError("the send page did not finish")
        if prof is not None and profiles is not None:
            profiles["send page, browser->cli"] = prof.stop()
        if sha256_file(out / src.name) != sha256_file(src):
            raise RuntimeError("hash mismatch")
        return rate(mib, end - since_connected(receiver, started))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        ctx.close()
        if receiver is not None:
            receiver.stop()


def bench_cli_to_cli(base: str, src: Path, mib: int, tmp: Path, repo: Path | None = None) -> float:
    out = Path(tempfile.mkdtemp(prefix="c2c-", dir=tmp))
    sender = Cli("send", "-server", base, "-transport", "webrtc", str(src), repo=repo)
    receiver: Cli | None = None
    try:
        code = sender.wait_code()
        started = time.monotonic()
        receiver = Cli("receive", "-server", base, "-transport", "webrtc", "-output", str(out), code,
                       repo=repo)
        if receiver.wait(1800) != 0:
            raise RuntimeError(receiver.output()[-2000:])
        end = time.monotonic()
        if sha256_file(out / src.name) != sha256_file(src):
            raise RuntimeError("hash mismatch")
        return rate(mib, end - since_connected(receiver, started))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        sender.stop()
        if receiver is not None:
            receiver.stop()


def bench_b2b(browser: Any, base: str, src: Path, mib: int, tmp: Path, profiles: Profiles | None) -> float:
    sctx, rctx = new_context(browser), new_context(browser)
    try:
        sender, receiver = sctx.new_page(), rctx.new_page()
        url = start_send(sender, base, str(src))
        receiver.add_init_script(NO_PICKERS)
        receiver.goto(url)
        receiver.wait_for_selector("#save-btn:visible", timeout=60_000)
        downloads: list[Any] = []
        receiver.on("download", lambda d: downloads.append(d))
        profs = (PageProfile(sctx, sender), PageProfile(rctx, receiver)) if profiles is not None else None
        t = time.monotonic()
        receiver.click("#save-btn")
        if wait_outcome(receiver, timeout_ms=1_800_000) != "done":
            raise RuntimeError("the receive page failed")
        secs = time.monotonic() - t  # includes signalling and ICE: no CLI line to start from
        if profs is not None and profiles is not None:
            profiles["send page, browser->browser"] = profs[0].stop()
            profiles["receive page, browser->browser"] = profs[1].stop()
        saved = tmp / "b2b.bin"
        downloads[0].save_as(saved)
        if sha256_file(saved) != sha256_file(src):
            raise RuntimeError("hash mismatch")
        saved.unlink()
        return rate(mib, secs)
    finally:
        sctx.close()
        rctx.close()


ROWS = ["raw chromium<->chromium", "raw aiortc->chromium", "raw chromium->aiortc",
        "cli->browser", "browser->cli", "cli->cli webrtc", "browser->browser"]
#: sp2p row -> the raw row it is compared with
CEILING = {"cli->browser": "raw aiortc->chromium", "browser->cli": "raw chromium->aiortc",
           "browser->browser": "raw chromium<->chromium"}
#: rows also compared with the browser's own ceiling (issue 13: >= 0.8 of it)
VS_BROWSER = ("cli->browser", "browser->cli")
BROWSER_CEILING = "raw chromium<->chromium"
#: with --baseline-static DIR: the page rows again, with the web UI from DIR (an older static/)
PAGE_ROWS = ("cli->browser", "browser->cli", "browser->browser")
BASE = " @base"
#: with --baseline-tree DIR: the CLI rows again, with the sp2p CLI of the checkout DIR
CLI_ROWS = ("cli->browser", "browser->cli", "cli->cli webrtc")
TREE = " @tree"


Samples = dict[str, "list[float] | str"]  # row -> MiB/s of each round, or "failed: why"
CpuSamples = dict[str, list[dict[str, float]]]  # row -> CPU s/GiB per process kind, each round


def cpu_per_gib(spent: dict[str, float], mib: int) -> dict[str, float]:
    """CPU seconds per GiB: every Chromium process, its renderers, the sp2p CLIs (or raw aiortc)."""
    gib = mib / 1024
    chromium = sum(v for k, v in spent.items() if k.startswith("chromium"))
    return {"chromium": chromium / gib, "renderer": spent.get("chromium renderer", 0.0) / gib,
            "cli": (spent.get("sp2p cli", 0.0) + spent.get("raw aiortc", 0.0)) / gib}


def run_rows(
    args: argparse.Namespace, wanted: list[str], tmp: Path
) -> tuple[Samples, CpuSamples, dict[str, int], Profiles]:
    """Run the rows for args.runs rounds: (samples, CPU, UDP drops per row, page profiles)."""
    samples: Samples = {name: [] for name in wanted}
    cpu: CpuSamples = {name: [] for name in wanted}
    drops = dict.fromkeys(wanted, 0)
    profiles: Profiles = {}
    server = start_server(*NO_LIMIT_FLAGS)
    old_ui = {"SP2P_STATIC_DIR": args.baseline_static}
    old = start_server(*NO_LIMIT_FLAGS, env=old_ui) if args.baseline_static else None
    try:
        with aiortc_peer_process() as peer, launch_chromium() as browser, TreeCpu() as tree:
            src = random_file(tmp / "payload.bin", args.mib << 20)
            base, mib = server.http_url, args.mib
            old_base = old.http_url if old else ""
            cli2 = Path(args.baseline_tree).resolve() if args.baseline_tree else None  # --baseline-tree
            def prof(r: int) -> Profiles | None:  # the first round only: sampling costs a little
                return profiles if args.profile and r == 0 else None

            runs: dict[str, Callable[[int], float]] = {
                "raw chromium<->chromium": lambda r: bench_raw_chromium(browser, base, mib),
                "raw aiortc->chromium": lambda r: bench_raw_aiortc(browser, peer, "a2c", mib),
                "raw chromium->aiortc": lambda r: bench_raw_aiortc(browser, peer, "c2a", mib),
                "cli->browser": lambda r: bench_cli_to_browser(browser, base, src, mib, tmp, prof(r)),
                "browser->cli": lambda r: bench_browser_to_cli(browser, base, src, mib, tmp, prof(r)),
                "cli->cli webrtc": lambda r: bench_cli_to_cli(base, src, mib, tmp),
                "browser->browser": lambda r: bench_b2b(browser, base, src, mib, tmp, prof(r)),
                "cli->browser" + BASE: lambda r: bench_cli_to_browser(browser, old_base, src, mib, tmp, None),
                "browser->cli" + BASE: lambda r: bench_browser_to_cli(browser, old_base, src, mib, tmp, None),
                "browser->browser" + BASE: lambda r: bench_b2b(browser, old_base, src, mib, tmp, None),
                "cli->browser" + TREE: lambda r: bench_cli_to_browser(
                    browser, base, src, mib, tmp, None, cli2),
                "browser->cli" + TREE: lambda r: bench_browser_to_cli(
                    browser, base, src, mib, tmp, None, cli2),
                "cli->cli webrtc" + TREE: lambda r: bench_cli_to_cli(base, src, mib, tmp, cli2),
            }
            for r in range(args.runs):  # rounds interleave the rows, so load drifts hit all alike
                for name in wanted:
                    got = samples[name]
                    if isinstance(got, str):
                        continue  # failed in an earlier round
                    before = udp_drops()
                    tree.take()
                    try:
                        got.append(runs[name](r))
                        cpu[name].append(cpu_per_gib(tree.take(), mib))
                        shown = f"{got[-1]:.1f} MiB/s"
                    except Exception as exc:  # noqa: BLE001 - report the row and go on
                        lines = str(exc).strip().splitlines()
                        samples[name] = shown = f"failed: {lines[-1] if lines else type(exc).__name__}"
                    drops[name] += udp_drops() - before
                    print(f"  .. {name}: {shown}", file=sys.stderr, flush=True)
    finally:
        server.stop()
        if old:
            old.stop()
    return samples, cpu, drops, profiles


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=200, help="payload size in MiB (default 200)")
    ap.add_argument("--runs", type=int, default=1, help="rounds over all rows; the median is shown")
    ap.add_argument("--only", default="", help="comma-separated row names (default: all)")
    ap.add_argument("--profile", action="store_true", help="CPU profiles of the pages (first round)")
    ap.add_argument("--baseline-static", default="", metavar="DIR",
                    help="also run the page rows with the web UI from DIR (before/after in one run)")
    ap.add_argument("--baseline-tree", default="", metavar="DIR",
                    help="also run the CLI rows with the sp2p CLI of the checkout DIR (before/after)")
    args = ap.parse_args()
    wanted = [r.strip() for r in args.only.split(",") if r.strip()] or ROWS
    chosen = list(wanted)
    if args.baseline_static:
        wanted += [r + BASE for r in PAGE_ROWS if r in chosen]
    if args.baseline_tree:
        wanted += [r + TREE for r in CLI_ROWS if r in chosen]
    unknown = [r for r in wanted if r.removesuffix(BASE).removesuffix(TREE) not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {ROWS}")
    with tempfile.TemporaryDirectory(prefix="sp2p-bench-") as tmpdir:
        samples, cpu, drops, profiles = run_rows(args, wanted, Path(tmpdir))
    median = {n: statistics.median(v) for n, v in samples.items() if isinstance(v, list) and v}
    print(f"payload {args.mib} MiB on loopback, {args.runs} round(s), Chromium {browser_version()}, "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  {'row':25s} {'MiB/s':>7s}  {'range':>11s}  {'udp drops':>9s}  "
          f"{'CPU s/GiB: chromium (renderer)  cli/aiortc':>43s}  ratio")
    for name in wanted:
        if name not in median:
            print(f"  {name:25s} {samples[name] or 'no result'}")
            continue
        value, notes = median[name], []
        if name.removesuffix(BASE).removesuffix(TREE) in VS_BROWSER and BROWSER_CEILING in median:
            notes.append(f"{value / median[BROWSER_CEILING]:4.2f} x {BROWSER_CEILING}")
        if CEILING.get(name) in median:
            notes.append(f"{value / median[CEILING[name]]:4.2f} x {CEILING[name]}")
        for other in (name + BASE, name + TREE):
            if other in median:
                notes.append(f"{value / median[other]:4.2f} x {other}")
        if name == "cli->browser" and "cli->cli webrtc" in median:
            notes.append(f"{value / median['cli->cli webrtc']:4.2f} x cli->cli webrtc")
        runs = samples[name]
        assert isinstance(runs, list)
        spread = f"{min(runs):.1f}-{max(runs):.1f}" if len(runs) > 1 else ""
        per = {k: statistics.median(c[k] for c in cpu[name]) for k in ("chromium", "renderer", "cli")}
        cpu_text = f"{per['chromium']:6.1f} ({per['renderer']:5.1f})  {per['cli']:10.1f}"
        print(f"  {name:25s} {value:7.1f}  {spread:>11s}  {drops[name] // len(runs):9d}  {cpu_text:>43s}  "
              f"{'; '.join(notes)}")
    for name, lines in profiles.items():
        print(f"{name}: main-thread CPU profile (self time)")
        for line in lines:
            print("  " + line)
    return 0


def browser_version() -> str:
    try:
        out = subprocess.run(["chromium", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.split()[1] if out.split() else "?"
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())

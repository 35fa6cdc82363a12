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

Ratios: each sp2p row against its raw ceiling, cli->browser and browser->cli also against raw
chromium<->chromium (issue 13's target: >= 0.8), and cli->browser against cli->cli webrtc.
CPU: seconds per GiB of every Chromium process (and of those the renderers) and of the sp2p CLI
processes, from /proc (scripts/proc_cpu.py), medians over the rounds.
With --runs N the rows are run N rounds in turn and the median (and range) is shown.
"udp drops" counts kernel UDP receive-buffer overflows (RcvbufErrors, IPv4 + IPv6) per run of the
row: each one costs the sender a loss recovery. --profile adds a CPU profile of the receive page
during cli->browser (top functions by self time).
Uses Debian chromium and a real sp2p-server on 127.0.0.1; the CLI runs as in the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.proc_cpu import TreeCpu  # noqa: E402
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server  # noqa: E402
from tests.web.browser import launch_chromium, new_context  # noqa: E402
from tests.web.cli import Cli, random_file  # noqa: E402
from tests.web.flows import NO_PICKERS, sha256_file, start_send, wait_outcome  # noqa: E402

MESSAGE = 262144
CONNECTED = "Connected via WebRTC"

RAW_PAGE = """
async (mib) => {
  const msg = crypto.getRandomValues(new Uint8Array(65536));
  const big = new Uint8Array(262144); for (let i = 0; i < 4; i++) big.set(msg, i * 65536);
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
  const n = mib * 4, total = n * 262144; let got = 0;
  const done = new Promise(r => { b.ondatachannel = e => { e.channel.binaryType = 'arraybuffer';
    e.channel.onmessage = m => { got += m.data.byteLength; if (got >= total) r(); }; }; });
  const dc = a.createDataChannel('raw'); dc.bufferedAmountLowThreshold = 2 << 20;
  await a.setLocalDescription(); await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(); await a.setRemoteDescription(b.localDescription);
  await new Promise(r => dc.onopen = r);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    while (dc.bufferedAmount > (8 << 20)) await new Promise(r => dc.onbufferedamountlow = r);
    dc.send(big);
  }
  await done; const secs = (performance.now() - t) / 1000; a.close(); b.close();
  return secs;
}
"""

#: The page offers (like the sp2p send page), the bench's aiortc answers over POST /offer.
RAW_AIORTC_PAGE = """
async ([dir, total]) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const dc = pc.createDataChannel('raw', { ordered: true });
  dc.binaryType = 'arraybuffer'; dc.bufferedAmountLowThreshold = 2 << 20;
  let got = 0, t0 = 0, finish;
  const finished = new Promise(r => finish = r);
  dc.onmessage = m => {
    if (typeof m.data === 'string') { if (m.data === 'done') finish(); return; }
    got += m.data.byteLength; if (got >= total) finish();
  };
  const opened = new Promise(r => dc.onopen = r);
  await pc.setLocalDescription();
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
  const res = await fetch(`/offer?dir=${dir}&bytes=${total}`, { method: 'POST',
    body: JSON.stringify({ type: 'offer', sdp: pc.localDescription.sdp }) });
  await pc.setRemoteDescription(await res.json());
  await opened; t0 = performance.now();
  if (dir === 'c2a') {
    const msg = crypto.getRandomValues(new Uint8Array(65536));
    const big = new Uint8Array(262144); for (let i = 0; i < 4; i++) big.set(msg, i * 65536);
    for (let sent = 0; sent < total; sent += big.length) {
      while (dc.bufferedAmount > (8 << 20)) await new Promise(r => dc.onbufferedamountlow = r);
      dc.send(big);
    }
  }
  await finished; const secs = (performance.now() - t0) / 1000; pc.close();
  return secs;
}
"""


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


class AiortcPeer:
    """Bare aiortc answering the page's offers on its own loop thread, with the SCTP tuning
    the CLI ships (sp2p.net.webrtc_sctp) and the CLI's send thresholds."""

    HIGH_WATER = 2 * 1024 * 1024
    LOW_WATER = 512 * 1024

    def __init__(self) -> None:
        from sp2p.net import webrtc_sctp

        webrtc_sctp.apply()
        self._tuning = webrtc_sctp
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # a blank page on this origin, so fetch("/offer") works
                body = b"<!doctype html><title>raw</title>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                q = parse_qs(urlparse(self.path).query)
                offer = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = asyncio.run_coroutine_threadsafe(
                    peer._answer(offer, q["dir"][0], int(q["bytes"][0])), peer.loop
                ).result(30)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/"

    async def _answer(self, offer: dict[str, str], direction: str, total: int) -> dict[str, str]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from sp2p.net.webrtc_ice import enlarge_socket_buffers

        pc = RTCPeerConnection()

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            if direction == "a2c":
                asyncio.ensure_future(self._send(channel, total))
                return
            got = 0

            def on_message(message: Any) -> None:
                nonlocal got
                got += len(message)
                if got >= total:
                    channel.send("done")

            channel.on("message", on_message)

        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        if pc.sctp is not None:
            self._tuning.set_receive_window(pc.sctp)
        await pc.setLocalDescription(await pc.createAnswer())
        if pc.sctp is not None:
            enlarge_socket_buffers(pc.sctp)  # as the CLI does, with its queue target for browsers
            self._tuning.set_peer(pc.sctp, browser=True, receive_buffer=None)
        return {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}

    async def _send(self, channel: Any, total: int) -> None:
        payload = os.urandom(MESSAGE)
        low = asyncio.Event()
        channel.bufferedAmountLowThreshold = self.LOW_WATER
        channel.on("bufferedamountlow", low.set)
        for _ in range(0, total, MESSAGE):
            while channel.bufferedAmount > self.HIGH_WATER:
                low.clear()
                await low.wait()
            channel.send(payload)


def serve_aiortc_peer(urls: mp.Queue[str], stop: Any) -> None:
    """Child process: the raw aiortc peer lives alone in its process, as the CLI does."""
    peer = AiortcPeer()
    urls.put(peer.url)
    stop.wait()


@contextlib.contextmanager
def aiortc_peer_process() -> Iterator[str]:
    ctx = mp.get_context("spawn")
    urls: mp.Queue[str] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=serve_aiortc_peer, args=(urls, stop), daemon=True)
    proc.start()
    try:
        yield urls.get(timeout=60)
    finally:
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def rate(mib: int, secs: float) -> float:
    return mib / secs if secs > 0 else float("nan")


def since_connected(cli: Cli, fallback: float) -> float:
    return cli.line_time(CONNECTED) or fallback


def bench_raw_chromium(browser: Any, base: str, mib: int) -> float:
    ctx = new_context(browser)
    try:
        page = ctx.new_page()
        page.goto(base + "/health")
        secs: float = page.evaluate(RAW_PAGE, mib)
        return rate(mib, secs)
    finally:
        ctx.close()


def bench_raw_aiortc(browser: Any, peer_url: str, direction: str, mib: int) -> float:
    ctx = new_context(browser)
    try:
        page = ctx.new_page()
        page.goto(peer_url)
        secs: float = page.evaluate(RAW_AIORTC_PAGE, [direction, mib << 20])
        return rate(mib, secs)
    finally:
        ctx.close()


def page_profile(cdp: Any) -> list[str]:
    prof = cdp.send("Profiler.stop")["profile"]
    nodes = {n["id"]: n["callFrame"] for n in prof["nodes"]}
    by: collections.Counter[str] = collections.Counter()
    for nid in prof["samples"]:
        cf = nodes[nid]
        where = f"{cf['url'].rsplit('/', 1)[-1]}:{cf['lineNumber'] + 1}"
        by[f"{cf['functionName'] or '(anonymous)'} {where}"] += 1
    total = max(1, len(prof["samples"]))
    return [f"{n / total * 100:5.1f}%  {name}" for name, n in by.most_common(12)]


def bench_cli_to_browser(
    browser: Any, base: str, src: Path, mib: int, tmp: Path, profile: list[str] | None
) -> float:
    cli = Cli("send", "-server", base, str(src))
    ctx = new_context(browser)
    try:
        code = cli.wait_code()
        page = ctx.new_page()
        page.add_init_script(NO_PICKERS)
        page.goto(f"{base}/r#{code}")
        page.wait_for_selector("#save-btn:visible", timeout=60_000)
        cdp = None
        if profile is not None:
            cdp = ctx.new_cdp_session(page)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 500})
            cdp.send("Profiler.start")
        downloads: list[Any] = []
        page.on("download", lambda d: downloads.append(d))
        clicked = time.monotonic()
        page.click("#save-btn")
        outcome = wait_outcome(page, timeout_ms=1_800_000)
        end = time.monotonic()
        if outcome != "done":
            raise RuntimeError(outcome)
        if cdp is not None and profile is not None:
            profile.extend(page_profile(cdp))
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


def bench_browser_to_cli(browser: Any, base: str, src: Path, mib: int, tmp: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="b2c-", dir=tmp))
    ctx = new_context(browser)
    receiver: Cli | None = None
    try:
        page = ctx.new_page()
        url = start_send(page, base, str(src))
        started = time.monotonic()
        receiver = Cli("receive", "-server", base, "-output", str(out), url.split("#", 1)[1])
        if receiver.wait(1800) != 0:
            raise RuntimeError(receiver.output()[-2000:])
        end = time.monotonic()
        if wait_outcome(page) != "done":
            raise RuntimeError("the send page did not finish")
        if sha256_file(out / src.name) != sha256_file(src):
            raise RuntimeError("hash mismatch")
        return rate(mib, end - since_connected(receiver, started))
    finally:
        shutil.rmtree(out, ignore_errors=True)
        ctx.close()
        if receiver is not None:
            receiver.stop()


def bench_cli_to_cli(base: str, src: Path, mib: int, tmp: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="c2c-", dir=tmp))
    sender = Cli("send", "-server", base, "-transport", "webrtc", str(src))
    receiver: Cli | None = None
    try:
        code = sender.wait_code()
        started = time.monotonic()
        receiver = Cli("receive", "-server", base, "-transport", "webrtc", "-output", str(out), code)
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


def bench_b2b(browser: Any, base: str, src: Path, mib: int, tmp: Path) -> float:
    sctx, rctx = new_context(browser), new_context(browser)
    try:
        sender, receiver = sctx.new_page(), rctx.new_page()
        url = start_send(sender, base, str(src))
        receiver.add_init_script(NO_PICKERS)
        receiver.goto(url)
        receiver.wait_for_selector("#save-btn:visible", timeout=60_000)
        downloads: list[Any] = []
        receiver.on("download", lambda d: downloads.append(d))
        t = time.monotonic()
        receiver.click("#save-btn")
        if wait_outcome(receiver, timeout_ms=1_800_000) != "done":
            raise RuntimeError("the receive page failed")
        secs = time.monotonic() - t  # includes signalling and ICE: no CLI line to start from
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


Samples = dict[str, "list[float] | str"]  # row -> MiB/s of each round, or "failed: why"
CpuSamples = dict[str, list[dict[str, float]]]  # row -> CPU s/GiB per process kind, each round


def cpu_per_gib(spent: dict[str, float], mib: int) -> dict[str, float]:
    """CPU seconds per GiB: every Chromium process, its renderers, the sp2p CLIs."""
    gib = mib / 1024
    chromium = sum(v for k, v in spent.items() if k.startswith("chromium"))
    return {"chromium": chromium / gib, "renderer": spent.get("chromium renderer", 0.0) / gib,
            "cli": spent.get("sp2p cli", 0.0) / gib}


def run_rows(
    args: argparse.Namespace, wanted: list[str], tmp: Path
) -> tuple[Samples, CpuSamples, dict[str, int], list[str]]:
    """Run the rows for args.runs rounds: (samples, CPU, UDP drops per row, receive-page profile)."""
    samples: Samples = {name: [] for name in wanted}
    cpu: CpuSamples = {name: [] for name in wanted}
    drops = dict.fromkeys(wanted, 0)
    profile: list[str] = []
    server = start_server(*NO_LIMIT_FLAGS)
    try:
        with aiortc_peer_process() as peer, launch_chromium() as browser, TreeCpu() as tree:
            src = random_file(tmp / "payload.bin", args.mib << 20)
            base, mib = server.http_url, args.mib
            runs: dict[str, Callable[[int], float]] = {
                "raw chromium<->chromium": lambda r: bench_raw_chromium(browser, base, mib),
                "raw aiortc->chromium": lambda r: bench_raw_aiortc(browser, peer, "a2c", mib),
                "raw chromium->aiortc": lambda r: bench_raw_aiortc(browser, peer, "c2a", mib),
                "cli->browser": lambda r: bench_cli_to_browser(
                    browser, base, src, mib, tmp, profile if args.profile and r == 0 else None
                ),
                "browser->cli": lambda r: bench_browser_to_cli(browser, base, src, mib, tmp),
                "cli->cli webrtc": lambda r: bench_cli_to_cli(base, src, mib, tmp),
                "browser->browser": lambda r: bench_b2b(browser, base, src, mib, tmp),
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
    return samples, cpu, drops, profile


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=200, help="payload size in MiB (default 200)")
    ap.add_argument("--runs", type=int, default=1, help="rounds over all rows; the median is shown")
    ap.add_argument("--only", default="", help="comma-separated row names (default: all)")
    ap.add_argument("--profile", action="store_true", help="CPU profile of the receive page (cli->browser)")
    args = ap.parse_args()
    wanted = [r.strip() for r in args.only.split(",") if r.strip()] or ROWS
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {ROWS}")
    with tempfile.TemporaryDirectory(prefix="sp2p-bench-") as tmpdir:
        samples, cpu, drops, profile = run_rows(args, wanted, Path(tmpdir))
    median = {n: statistics.median(v) for n, v in samples.items() if isinstance(v, list) and v}
    print(f"payload {args.mib} MiB on loopback, {args.runs} round(s), Chromium {browser_version()}, "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  {'row':25s} {'MiB/s':>7s}  {'range':>11s}  {'udp drops':>9s}  "
          f"{'CPU s/GiB: chromium (renderer)  cli':>36s}  ratio")
    for name in wanted:
        if name not in median:
            print(f"  {name:25s} {samples[name] or 'no result'}")
            continue
        value, notes = median[name], []
        if name in VS_BROWSER and BROWSER_CEILING in median:
            notes.append(f"{value / median[BROWSER_CEILING]:4.2f} x {BROWSER_CEILING}")
        if CEILING.get(name) in median:
            notes.append(f"{value / median[CEILING[name]]:4.2f} x {CEILING[name]}")
        if name == "cli->browser" and "cli->cli webrtc" in median:
            notes.append(f"{value / median['cli->cli webrtc']:4.2f} x cli->cli webrtc")
        runs = samples[name]
        assert isinstance(runs, list)
        spread = f"{min(runs):.1f}-{max(runs):.1f}" if len(runs) > 1 else ""
        per = {k: statistics.median(c[k] for c in cpu[name]) for k in ("chromium", "renderer", "cli")}
        cpu_text = f"{per['chromium']:6.1f} ({per['renderer']:5.1f})  {per['cli']:5.1f}"
        print(f"  {name:25s} {value:7.1f}  {spread:>11s}  {drops[name] // len(runs):9d}  {cpu_text:>36s}  "
              f"{'; '.join(notes)}")
    if profile:
        print("receive page CPU profile during cli->browser (self time):")
        for line in profile:
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

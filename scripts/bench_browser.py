#!/usr/bin/env python3
"""Throughput of the browser UI on loopback, against a raw baseline measured in the same run.

    python3 scripts/bench_browser.py [--mib 200] [--skip-cli]

Prints MB/s (MiB/s) for:
  raw-dc         two RTCPeerConnections in one Chromium page, 256 KiB messages (the ceiling)
  browser->browser   sp2p send page -> receive page, streamed download
  cli->browser       `sp2p send` -> receive page (needs the CLI's WebRTC transport)
  cli->cli webrtc    `sp2p send -transport webrtc` -> `sp2p receive` (needs the same)
and each as a ratio of raw-dc. Uses Debian chromium and a real sp2p-server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.server_proc import NO_LIMIT_FLAGS, start_server  # noqa: E402
from tests.web.browser import launch_chromium, new_context  # noqa: E402
from tests.web.cli import Cli  # noqa: E402
from tests.web.flows import NO_PICKERS, sha256_file, start_send, wait_outcome  # noqa: E402

RAW_DC = """
async (mib) => {
  const chunk = crypto.getRandomValues(new Uint8Array(65536));
  const msg = new Uint8Array(262144); for (let i = 0; i < 4; i++) msg.set(chunk, i * 65536);
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
    dc.send(msg);
  }
  await done; const secs = (performance.now() - t) / 1000; a.close(); b.close();
  return secs;
}
"""


def random_file(path: Path, mib: int) -> Path:
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    return path


def rate(mib: int, secs: float) -> float:
    return mib / secs if secs > 0 else float("nan")


def bench_raw(browser: Any, base: str, mib: int) -> float:
    ctx = new_context(browser)
    try:
        page = ctx.new_page()
        page.goto(base + "/health")
        secs: float = page.evaluate(RAW_DC, mib)
        return rate(mib, secs)
    finally:
        ctx.close()


def receive_in_page(page: Any, url: str, dest: Path) -> Path:
    page.add_init_script(NO_PICKERS)
    page.goto(url)
    page.wait_for_selector("#save-btn:visible", timeout=60_000)
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#save-btn")
    outcome = wait_outcome(page, timeout_ms=900_000)
    if outcome != "done":
        raise RuntimeError(outcome)
    target = dest / "received.bin"
    downloads[0].save_as(target)
    return target


def bench_b2b(browser: Any, base: str, src: Path, mib: int, tmp: Path) -> float:
    sctx, rctx = new_context(browser), new_context(browser)
    try:
        sender, receiver = sctx.new_page(), rctx.new_page()
        url = start_send(sender, base, str(src))
        t = time.monotonic()
        saved = receive_in_page(receiver, url, tmp)
        secs = time.monotonic() - t
        wait_outcome(sender)
        assert sha256_file(saved) == sha256_file(src), "browser->browser: hash mismatch"
        return rate(mib, secs)
    finally:
        sctx.close()
        rctx.close()


def bench_cli_to_browser(browser: Any, base: str, src: Path, mib: int, tmp: Path) -> float:
    cli = Cli("send", "-server", base, str(src))
    ctx = new_context(browser)
    try:
        code = cli.wait_code()
        t = time.monotonic()
        saved = receive_in_page(ctx.new_page(), f"{base}/r#{code}", tmp)
        secs = time.monotonic() - t
        if cli.wait(60) != 0:
            raise RuntimeError(cli.output()[-2000:])
        assert sha256_file(saved) == sha256_file(src), "cli->browser: hash mismatch"
        return rate(mib, secs)
    finally:
        ctx.close()
        cli.stop()


def bench_cli_to_cli(base: str, src: Path, mib: int, tmp: Path) -> float:
    out = tmp / "cli-out"
    out.mkdir()
    sender = Cli("send", "-server", base, "-transport", "webrtc", str(src))
    try:
        code = sender.wait_code()
        t = time.monotonic()
        receiver = Cli("receive", "-server", base, "-transport", "webrtc", "-output", str(out), code)
        try:
            if receiver.wait(900) != 0:
                raise RuntimeError(receiver.output()[-2000:])
        finally:
            receiver.stop()
        secs = time.monotonic() - t
        assert sha256_file(out / src.name) == sha256_file(src), "cli->cli: hash mismatch"
        return rate(mib, secs)
    finally:
        sender.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=200, help="payload size in MiB (default 200)")
    ap.add_argument("--skip-cli", action="store_true", help="only the browser measurements")
    args = ap.parse_args()
    server = start_server(*NO_LIMIT_FLAGS)
    results: dict[str, float | str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sp2p-bench-") as tmpdir:
            tmp = Path(tmpdir)
            src = random_file(tmp / "payload.bin", args.mib)
            with launch_chromium() as browser:
                results["raw-dc"] = bench_raw(browser, server.http_url, args.mib)
                results["browser->browser"] = bench_b2b(browser, server.http_url, src, args.mib, tmp)
                if not args.skip_cli:
                    try:
                        results["cli->browser"] = bench_cli_to_browser(
                            browser, server.http_url, src, args.mib, tmp
                        )
                    except Exception as exc:  # noqa: BLE001 - report and go on
                        results["cli->browser"] = f"failed: {str(exc).strip().splitlines()[-1:]}"
            if not args.skip_cli:
                try:
                    results["cli->cli webrtc"] = bench_cli_to_cli(server.http_url, src, args.mib, tmp)
                except Exception as exc:  # noqa: BLE001
                    results["cli->cli webrtc"] = f"failed: {str(exc).strip().splitlines()[-1:]}"
    finally:
        server.stop()
    base = results["raw-dc"]
    print(f"payload {args.mib} MiB on loopback, Chromium {'+ CLI ' if not args.skip_cli else ''}(MiB/s)")
    for name, value in results.items():
        if isinstance(value, float) and isinstance(base, float):
            print(f"  {name:18s} {value:8.1f} MB/s   {value / base:5.2f} x raw-dc")
        else:
            print(f"  {name:18s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

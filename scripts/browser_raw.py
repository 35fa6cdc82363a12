"""The raw data-channel ceilings scripts/bench_browser.py compares the sp2p rows with: two
RTCPeerConnections in one Chromium page, and bare aiortc (with the CLI's SCTP tuning, in its own
process as the CLI is) sending to or receiving from a page. Same payload, 256 KiB messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.web.browser import new_context

MESSAGE = 262144

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

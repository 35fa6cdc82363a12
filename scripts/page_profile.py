"""A sampling CPU profile of one page's main thread through Chromium's DevTools protocol
(Profiler.start/stop over Playwright's CDP session), summed by function self time, for
scripts/bench_browser.py --profile. WebCrypto's AES-GCM and the WebRTC network thread run off the
main thread: only the calls into them show here; /proc gives the whole process (scripts/benchkit/cpu.py)."""

from __future__ import annotations

import collections
from typing import Any

#: self-time buckets by source file: what each part of the page costs
GROUPS = {
    "sha256.js": "SHA-256",
    "sha256_blocks.js": "SHA-256",
    "sha2.js": "SHA-256",
    "_md.js": "SHA-256",
    "utils.js": "SHA-256",
    "frames.js": "framing + AES-GCM calls",
    "session.js": "framing + AES-GCM calls",
    "channel.js": "data channel stream",
    "sinks.js": "sink / service-worker hand-off",
    "transfer.js": "transfer loop",
    "fzstd.js": "zstd",
    "zstd.js": "zstd",
    "tar.js": "tar",
}


class PageProfile:
    """Start sampling a page now; `stop()` returns printable lines."""

    def __init__(self, context: Any, page: Any, interval_us: int = 500) -> None:
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("Profiler.enable")
        self.cdp.send("Profiler.setSamplingInterval", {"interval": interval_us})
        self.cdp.send("Profiler.start")

    def stop(self, top: int = 12) -> list[str]:
        prof = self.cdp.send("Profiler.stop")["profile"]
        self.cdp.detach()
        frames = {n["id"]: n["callFrame"] for n in prof["nodes"]}
        by_function: collections.Counter[str] = collections.Counter()
        by_group: collections.Counter[str] = collections.Counter()
        for node_id in prof["samples"]:
            cf = frames[node_id]
            file = cf["url"].rsplit("/", 1)[-1]
            name = cf["functionName"] or "(anonymous)"
            by_function[f"{name} {file}:{cf['lineNumber'] + 1}" if file else name] += 1
            by_group[GROUPS.get(file, name if not file else "other page code")] += 1
        total = max(1, len(prof["samples"]))
        busy = total - by_function["(idle)"]
        lines = [f"main thread busy {busy / total * 100:5.1f}% ({total} samples)"]
        lines += [f"  {n / total * 100:5.1f}%  {g}" for g, n in by_group.most_common() if g != "(idle)"][:8]
        lines.append("top functions:")
        shown = [(f, n) for f, n in by_function.most_common(top + 1) if f != "(idle)"]
        lines += [f"  {n / total * 100:5.1f}%  {f}" for f, n in shown]
        return lines

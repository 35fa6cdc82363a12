"""CPU seconds for the benchmarks.

`TreeCpu`: this process's descendants by kind (Chromium browser/renderer/gpu/network, the sp2p
CLI), sampled from /proc so that processes which exit mid-row (a closed tab's renderer) still
count up to their last sample (scripts/bench_browser.py, CPU seconds per GiB).
`ChildCpu`: the finished children of a `with` block, from getrusage (both peers of a transfer).
"""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def kind_of(cmdline: list[str]) -> str | None:
    """What a process is, from its argv; None for processes the bench does not report."""
    if len(cmdline) == 1:  # Chromium's children rewrite their title into one space-joined string
        cmdline = cmdline[0].split(" ")
    exe = Path(cmdline[0]).name if cmdline else ""
    if "chromium" in exe or "chrome" in exe:
        kinds = [a.split("=", 1)[1] for a in cmdline if a.startswith("--type=")]
        if not kinds:
            return "chromium browser"
        sub = [a.split("=", 1)[1] for a in cmdline if a.startswith("--utility-sub-type=")]
        if kinds[0] == "utility" and sub:
            return "chromium " + sub[0].split(".")[0]  # "network", "storage", ...
        return "chromium " + kinds[0]
    if "-m" in cmdline and "sp2p" in cmdline:
        return "sp2p cli"
    if any("multiprocessing.spawn" in a for a in cmdline):
        return "raw aiortc"  # the bench's own aiortc peer process
    return None


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, user + system CPU seconds) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


class TreeCpu:
    """Polls every `interval` seconds in a thread; `take()` returns CPU seconds per kind spent
    since the previous `take()` (a process first seen mid-row counts from zero)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.root = os.getpid()
        self.interval = interval
        self._last: dict[int, tuple[str, float]] = {}  # pid -> (kind, cpu seconds at last poll)
        self._base: dict[int, float] = {}  # pid -> cpu seconds at the last take()
        self._kinds: dict[int, str | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        stats: dict[int, tuple[int, float]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (st := _stat(int(entry))) is not None:
                stats[int(entry)] = st
        mine = {self.root}
        grew = True
        while grew:  # descendants: keep adding children of known members
            grew = False
            for pid, (ppid, _) in stats.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    grew = True
        with self._lock:
            for pid in mine:
                if self._kinds.get(pid, "chromium zygote") == "chromium zygote":
                    # a child just forked from the zygote still carries its title: look again
                    self._kinds[pid] = kind_of(_cmdline(pid))
                kind = self._kinds[pid]
                if kind is not None:
                    self._last[pid] = (kind, stats[pid][1])

    def take(self) -> dict[str, float]:
        """CPU seconds per kind since the previous take()."""
        self.poll()
        with self._lock:
            out: dict[str, float] = {}
            for pid, (kind, cpu) in self._last.items():
                out[kind] = out.get(kind, 0.0) + cpu - self._base.get(pid, 0.0)
                self._base[pid] = cpu
            return out


class ChildCpu:
    """User + system seconds of the children that finished (and were waited for) inside the
    `with` block: both peers of a transfer spawned by this process."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    @staticmethod
    def _now() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> ChildCpu:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._now() - self._start

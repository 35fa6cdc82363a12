"""The after-close phase of scripts/bench_server.py: do new sessions pair while the server
is still tearing down the thousands that just left?

Right after the mass close one probe exchange (the next session), then for `watch` seconds
one a second. Each probe that pairs gives its time from its own start to `peer-joined`;
one that fails gives the step it was stuck at (bench_server_load.STAGES: connect, hello,
join, peer-joined, exchange). Meanwhile a watcher counts the server processes' open files
(/proc/PID/fd, nothing asked of the server): the teardown is done when they are back to
what the server held right before the close less the idle senders' sockets (give or take
a probe's and a few per process that first use opens); a probe that paired before then
did not wait for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench_server_load import ExchangeTimes, Progress
from bench_server_targets import process_tree

#: connections a probe holds at most (its sender and its receiver)
PROBE_CONNECTIONS = 2
#: files a server process may open after the baseline count and keep (a probe's first
#: use of something)
SLACK_PER_PROCESS = 4
#: seconds between two counts while the teardown runs
COUNT_EVERY = 0.1

#: runs one probe exchange (timeout in seconds, progress to fill in)
Probe = Callable[[float, Progress], ExchangeTimes | BaseException]


@dataclass
class Probed:
    """One probe: when it started (monotonic), its pairing time or where it was stuck."""

    started: float
    paired: float | None
    stuck_at: str | None
    #: seconds from its start to the end of each step it finished (STAGES)
    steps: dict[str, float] = field(default_factory=dict)

    def timeline(self) -> str:
        """`connect 812, hello 820, ...` in ms from the probe's start."""
        return ", ".join(f"{stage} {at * 1e3:.0f}" for stage, at in self.steps.items())


@dataclass
class AfterClose:
    probes: list[Probed] = field(default_factory=list)
    #: monotonic time of the last idle sender's close (the generators' clock is the same)
    closed_at: float = 0.0
    #: seconds from the last close until the open connections were down to a probe's
    #: (None: not within the watch, or not watched)
    teardown: float | None = None
    #: the server's processes were watched (so a missing `teardown` means: not done in time)
    watched: bool = False

    @property
    def first_paired(self) -> float | None:
        """Last close -> the next session's peer-joined."""
        first = self.probes[0] if self.probes else None
        if first is None or first.paired is None:
            return None
        return first.started - self.closed_at + first.paired

    @property
    def later(self) -> list[Probed]:
        return self.probes[1:]

    @property
    def worst(self) -> Probed | None:
        """The probe that took longest to pair, of those that paired (the first included)."""
        paired = [p for p in self.probes if p.paired is not None]
        return max(paired, key=lambda p: p.paired or 0.0) if paired else None

    @property
    def worst_paired(self) -> float | None:
        worst = self.worst
        return worst.paired if worst is not None else None

    @property
    def stuck(self) -> Counter[str]:
        """Failed probes by the step they were stuck at."""
        return Counter(p.stuck_at for p in self.probes if p.stuck_at is not None)

    @property
    def paired_in_teardown(self) -> int:
        """Probes that paired before the teardown was done."""
        if self.teardown is None:
            return 0
        done = self.closed_at + self.teardown
        return sum(1 for p in self.probes if p.paired is not None and p.started + p.paired < done)

    def describe(self) -> str:
        first = self.first_paired
        text = f"next session paired in {first * 1e3:.0f} ms" if first is not None else "next session FAILED"
        ok = sum(1 for p in self.later if p.paired is not None)
        text += f", probes {ok}/{len(self.later)}"
        worst = self.worst
        if worst is not None and worst.paired is not None:
            text += f", worst pairing {worst.paired * 1e3:.0f} ms ({worst.timeline()})"
        if self.stuck:
            text += ", failed at " + ", ".join(f"{stage} {n}" for stage, n in self.stuck.most_common())
        if self.teardown is not None:
            text += (
                f", teardown done {self.teardown:.1f} s after the close "
                f"({self.paired_in_teardown} probes paired before)"
            )
        elif self.watched:
            text += ", teardown not done within the watch"
        return text


def open_files(roots: tuple[int, ...]) -> tuple[int, int]:
    """(open files, processes) over the server's process tree."""
    total = processes = 0
    for pid in process_tree(roots):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
            processes += 1
        except OSError:
            pass  # gone meanwhile
    return total, processes


class TeardownWatch:
    """Counts the server's open files until they are back to `base` (see the docstring)."""

    def __init__(self, roots: tuple[int, ...], base: int | None, closed_at: float) -> None:
        self._roots = roots
        self._base = base
        self._closed_at = closed_at
        self._stop = threading.Event()
        self.done: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def watched(self) -> bool:
        return bool(self._roots) and self._base is not None

    def _run(self) -> None:
        if self._base is None:
            return
        while self.watched and not self._stop.is_set():
            count, processes = open_files(self._roots)
            if count <= self._base + PROBE_CONNECTIONS + SLACK_PER_PROCESS * processes:
                self.done = time.monotonic() - self._closed_at
                return
            self._stop.wait(COUNT_EVERY)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


def after_close(
    roots: tuple[int, ...], base_files: int | None, closed_at: float, watch: float, probe: Probe
) -> AfterClose:
    """The next session right away, then one probe a second for `watch` seconds; the
    teardown watched on the processes `roots` (and their children), which held
    `base_files` open files besides the idle senders' sockets (None: not watched)."""
    result = AfterClose(closed_at=closed_at)
    watcher = TeardownWatch(roots, base_files, closed_at)
    try:
        result.probes.append(_one(probe))
        watch_end = time.monotonic() + watch
        while time.monotonic() < watch_end:
            started = time.monotonic()
            result.probes.append(_one(probe))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    finally:
        watcher.stop()
    result.teardown, result.watched = watcher.done, watcher.watched
    return result


def _one(probe: Probe) -> Probed:
    started = time.monotonic()
    progress = Progress()
    outcome = probe(5.0, progress)
    if isinstance(outcome, ExchangeTimes):
        return Probed(started, outcome.paired, None, progress.done)
    return Probed(started, None, progress.stage, progress.done)

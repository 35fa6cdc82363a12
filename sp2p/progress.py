"""Transfer progress: a redrawn line on a terminal, plain periodic lines otherwise.

Time comes from an injectable clock so tests can drive it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sp2p.ui import Terminal, human_duration, human_size

PLAIN_INTERVAL = 5.0
TTY_INTERVAL = 0.1
BAR_WIDTH = 32


class Progress:
    def __init__(
        self,
        term: Terminal,
        *,
        verb: str,
        total: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.term = term
        self.verb = verb
        self.total = total or None  # 0 means unknown for display
        self.clock = clock
        self.start = clock()
        self.done = 0
        self._last_draw = -1e9
        self._lock = threading.Lock()

    def update(self, done: int) -> None:
        with self._lock:
            self.done = done
            now = self.clock()
            interval = TTY_INTERVAL if self.term.is_tty else PLAIN_INTERVAL
            if now - self._last_draw < interval:
                return
            self._last_draw = now
            text = self.render(now)
        if self.term.is_tty:
            self.term.live(text)
        else:
            self.term.line(text)

    def render(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-6)
        speed = self.done / elapsed
        parts = [human_size(self.done), f"{human_size(speed)}/s"]
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * BAR_WIDTH)
            bar = "#" * filled + " " * (BAR_WIDTH - filled)
            left = max(self.total - self.done, 0)  # never negative when the estimate was low (W7)
            eta = human_duration(left / speed) if speed > 0 else "?"
            return f"[{bar}] {frac * 100:3.0f}%  " + "  ".join(parts) + f"  ETA {eta}"
        return f"{self.verb}  " + "  ".join(parts)

    def finish(self) -> float:
        """Clear the live line; returns the elapsed seconds."""
        self.term.end_live()
        return self.clock() - self.start

"""Transfer progress, the one renderer for both sides.

On a terminal: one line redrawn at most 10 times a second, and at the end a last frame
at 100 % with the final size, the average rate and the time taken, which stays on screen.
Without a terminal (a log): a few milestone lines (25/50/75 %, or every 30 s when the
size is not known) and the same final line, never a stream of frames.
Unknown sizes (streams) show bytes and rate, never a percentage.

Time comes from an injectable clock so tests can drive it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sp2p.term.ui import LIVE_INDENT, Terminal, human_duration, human_size

#: at most 10 redraws a second on a terminal
TTY_INTERVAL = 0.1
#: a log line this often when there is no percentage to mark milestones by
PLAIN_INTERVAL = 30.0
MILESTONES = (25, 50, 75)
BAR_WIDTH = 32
#: a narrower bar tells too little for its room
MIN_BAR = 10


#: the widest a size, a rate and an ETA or elapsed time get ("1023.9 KiB", "1023.9 MiB/s", "ETA 23h59m")
_WIDEST_DONE, _WIDEST_RATE, _WIDEST_TAIL = 10, 12, 10


def _fit(columns: int | None, frac: float, pct: str, total: str, done: str, rate: str, tail: str) -> str:
    """The terminal's frame in `columns`: a line wider than the terminal wraps, and the redraw
    would clear only its last row (a new line left behind 10 times a second). The bar shrinks
    first, then goes; then the total and the rate (Terminal.live cuts what still does not fit).
    The layout is chosen for the widest values the fields take in this transfer, so it does not
    flip from frame to frame as digits come and go."""
    most = max(len(total), _WIDEST_DONE)  # done may read wider than the total: 1023.9 KiB of 1.0 MiB
    full = len(pct) + most + len(total) + _WIDEST_RATE + _WIDEST_TAIL + 10
    layouts = (  # (the frame, its widest length)
        (f"{pct}  {done} of {total}  {rate}  {tail}", full),
        (f"{pct}  {done}  {rate}  {tail}", len(pct) + most + _WIDEST_RATE + _WIDEST_TAIL + 6),
        (f"{pct}  {done}  {tail}", len(pct) + most + _WIDEST_TAIL + 4),
    )
    room = None if columns is None else columns - LIVE_INDENT - 1  # the last column can wrap
    bar = BAR_WIDTH if room is None else min(BAR_WIDTH, room - layouts[0][1] - 3)
    if bar >= MIN_BAR:
        filled = int(frac * bar)
        return "[" + "#" * filled + " " * (bar - filled) + "] " + layouts[0][0]
    assert room is not None
    return next((line for line, widest in layouts if widest <= room), layouts[-1][0])


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
        #: bytes that were already there (a resumed transfer): not part of the speed
        self.base = 0
        self._last_draw = -1e9
        self._next_milestone = 0  # index into MILESTONES
        self._lock = threading.Lock()

    def update(self, done: int) -> None:
        with self._lock:
            self.done = done
            now = self.clock()
            text = self._tty_frame(now) if self.term.is_tty else self._milestone(now)
            if text is None:
                return
        if self.term.is_tty:
            self.term.live(text)
        else:
            self.term.line(text)

    def _tty_frame(self, now: float) -> str | None:
        if now - self._last_draw < TTY_INTERVAL:
            return None
        self._last_draw = now
        return self.render(now)

    def _milestone(self, now: float) -> str | None:
        if self.total:
            pct = self.done * 100 // self.total
            crossed = False
            while self._next_milestone < len(MILESTONES) and pct >= MILESTONES[self._next_milestone]:
                self._next_milestone += 1
                crossed = True
            # at 100 % the final line (finish) follows: one line, not one with an ETA and then it
            return self.render(now) if crossed and self.done < self.total else None
        if now - max(self._last_draw, self.start) < PLAIN_INTERVAL:
            return None
        self._last_draw = now
        return self.render(now)

    def render(self, now: float, *, final: bool = False) -> str:
        elapsed = max(now - self.start, 1e-6)
        moved = max(self.done - self.base, 0)  # what this run carried
        rate = f"{human_size(moved / elapsed)}/s"
        tail = f"in {human_duration(elapsed)}" if final else ""
        if not self.total:
            return "  ".join(p for p in (f"{self.verb}:", human_size(self.done), rate, tail) if p)
        frac = min(self.done / self.total, 1.0)
        if not final:
            speed = moved / elapsed
            left = max(self.total - self.done, 0)  # never negative when the estimate was low (W7)
            tail = "ETA " + (human_duration(left / speed) if speed > 0 else "?")
        amount = f"{human_size(self.done)} of {human_size(self.total)}"
        pct = f"{frac * 100:3.0f}%"
        if not self.term.is_tty:
            return f"{self.verb}: {pct}  {amount}  {rate}  {tail}"
        return _fit(self.term.columns(), frac, pct, human_size(self.total), human_size(self.done), rate, tail)

    def finish(self, done: int | None = None) -> float:
        """The transfer succeeded: draw the final frame (100 %, size, average rate) and
        leave it on screen. Returns the elapsed seconds."""
        with self._lock:
            if done is not None:
                self.done = done
            if self.total and self.done >= self.total:
                self.total = self.done  # a low estimate (W7) still ends at 100 %
            now = self.clock()
            text = self.render(now, final=True)
        if self.term.is_tty:
            self.term.live(text)
            self.term.end_live()
        else:
            self.term.line(text)
        return now - self.start

    def abort(self) -> float:
        """The transfer failed: keep the last frame as it was (it tells how far it got)."""
        self.term.end_live()
        return self.clock() - self.start

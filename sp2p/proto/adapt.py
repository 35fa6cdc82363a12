"""Adaptive compression effort (issue 12): `-compress N` is the most the sender spends.

Like `zstd --adapt`, the level follows whichever side is the bottleneck. The sender's writer
reports, per Data frame, how long it waited for the frame's compression to finish (the
compressor is behind) and how long writing it to the link took (the link, or the receiver
behind it, is behind). Over a window of frames:

* the writer waited for compression for a noticeable share of the time -> one step cheaper;
* it never waited for compression and writing kept it busy -> one step more effort.

A step up is kept only if the next window carries at least CLIMB_GAIN more input per second:
when the writer was held up not by the link but by a receiver sharing our CPU (loopback), more
effort only takes CPU from it. A step up that is undone (so, or because the compressor fell
behind) needs twice as many link-bound windows in a row before it is tried again (up to
MAX_PATIENCE), so the level settles instead of swinging between two steps.

A capped link is bursty seen from the writer: the socket buffers (MiBs per stream) take
frames at once for a few hundred ms, then a write blocks about as long. So whether the link is
busy is judged over the last ~LINK_MEMORY seconds (the writing share, decayed over time), not
over one window: while it is, waiting for the compressor does not step down (the buffers still
hold plenty for the link), and a window without waits steps up. 12-frame windows alone kept
text stored on the 50 MB/s, 70 ms link (~40 MB/s, as -compress 0).

Steps run over a ladder of zstd settings, from a stored frame (raw blocks: a copy, no search)
through a fast negative level to the zstd levels that `N` allows. A chunk that does not
shrink at the level it got sends the next ones stored for a while (doubling each time it
still does not shrink), so incompressible stretches cost nothing.

Sans-IO: the caller measures time and reports it; nothing here reads a clock.
"""

from __future__ import annotations

import math
from typing import Final

from sp2p.proto.compression import STORED, zstd_level

#: a fast negative zstd level between stored and level 1 (about 2x level 1's speed on text)
FAST_LEVEL: Final = -5
#: frames per decision: enough that one slow write or one scheduling hiccup does not decide
WINDOW: Final = 12
#: seconds over which the link's busy share is remembered (time constant of its decay)
LINK_MEMORY: Final = 0.5
#: the writer waiting this share of the window for compression means the compressor is behind
COMPRESSOR_BEHIND: Final = 0.10
#: writing taking this share of the window (and no wait for compression) means the link is behind
LINK_BEHIND: Final = 0.50
#: a compressed chunk bigger than this share of its input did not shrink
NO_GAIN: Final = 0.97
#: a step up must raise the input carried per second by this factor to be kept
CLIMB_GAIN: Final = 1.05
#: link-bound windows in a row needed to climb to a step that proved too costly, at most
MAX_PATIENCE: Final = 64
#: chunks sent stored after one did not shrink; doubles while the input stays incompressible
STORED_RUN: Final = 8
MAX_STORED_RUN: Final = 256


def ladder(max_level: int) -> list[int]:
    """The zstd settings from cheapest to most effort for `-compress max_level` (1-9)."""
    top = zstd_level(max_level)
    return [STORED, FAST_LEVEL, *sorted({zstd_level(n) for n in range(1, 10) if zstd_level(n) <= top})]


class LevelController:
    """Chooses the zstd setting for each chunk from measurements the sender reports."""

    def __init__(self, max_level: int, *, start_level: int = 1) -> None:
        self.steps = ladder(max_level)
        #: writing time and wall time of the last ~LINK_MEMORY seconds (decayed sums)
        self._busy = 0.0
        self._span = 0.0
        start = zstd_level(min(start_level, max_level))
        self._index = self.steps.index(start)
        #: per step: link-bound windows in a row needed before climbing to it
        self._patience = [1] * len(self.steps)
        self._link_bound = 0
        self._climbed = False  # the last decision was a step up
        self._rate_before_climb = 0.0
        self._stored_left = 0
        self._stored_run = STORED_RUN
        self._reset_window()

    def _reset_window(self) -> None:
        self._frames = 0
        self._bytes = 0
        self._waited = 0.0
        self._writing = 0.0
        self._elapsed = 0.0

    @property
    def current(self) -> int:
        """The ladder setting in force (before any stored run)."""
        return self.steps[self._index]

    def next_level(self) -> int:
        """The setting for the next chunk: STORED, or a zstd level to compress it with."""
        if self._stored_left > 0:
            self._stored_left -= 1
            return STORED
        return self.current

    def on_compressed(self, level: int, raw_len: int, packed_len: int) -> None:
        """One chunk was compressed at `level` into `packed_len` bytes."""
        if level == STORED or raw_len < 4096:
            return
        if packed_len > raw_len * NO_GAIN:
            self._stored_left = self._stored_run
            self._stored_run = min(self._stored_run * 2, MAX_STORED_RUN)
        else:
            self._stored_run = STORED_RUN

    def on_written(self, level: int, raw_len: int, waited: float, writing: float, elapsed: float) -> None:
        """The writer sent one Data frame made at `level` from `raw_len` input bytes.

        waited: seconds it waited for the frame's compression; writing: seconds the write took;
        elapsed: seconds since the previous frame's write ended (the frame's share of wall time).
        Frames made at another setting than the current one (in flight across a change, or a
        stored run) do not count.
        """
        if level != self.current:
            return
        self._frames += 1
        self._bytes += raw_len
        self._waited += waited
        self._writing += writing
        wall = max(elapsed, waited + writing)
        self._elapsed += wall
        keep = math.exp(-wall / LINK_MEMORY)
        self._busy = self._busy * keep + writing
        self._span = self._span * keep + wall
        if self._frames < WINDOW:
            return
        link_busy = self._busy > LINK_BEHIND * max(self._span, 1e-9)
        total = max(self._elapsed, 1e-9)
        rate = self._bytes / total
        climbed, self._climbed = self._climbed, False
        waits = self._waited > COMPRESSOR_BEHIND * total
        behind = waits and not link_busy
        if self._index > 0 and (behind or (climbed and rate < self._rate_before_climb * CLIMB_GAIN)):
            if climbed:  # that step up did not pay: be slower to try it again
                self._patience[self._index] = min(self._patience[self._index] * 2, MAX_PATIENCE)
            self._index -= 1
            self._link_bound = 0
        elif waits:
            # a busy link holds the step down back; a step up stays on probation meanwhile
            self._climbed = climbed
            self._link_bound = 0
        elif self._waited <= COMPRESSOR_BEHIND * total / 4 and (
            link_busy or self._writing > LINK_BEHIND * total
        ):
            self._link_bound += 1
            up = self._index + 1
            if up < len(self.steps) and self._link_bound >= self._patience[up]:
                self._index, self._link_bound, self._climbed = up, 0, True
                self._rate_before_climb = rate
        else:
            self._link_bound = 0
        self._reset_window()

"""Adaptive compression effort (issue 12): `-compress N` is the most the sender spends.

Like `zstd --adapt`, the level follows whichever side is the bottleneck. The sender's writer
reports, per Data frame, how long it waited for the frame's compression (the compressor is
behind), how long writing it took and how many bytes the transport still holds unsent after it
(the link, or the receiver behind it, is behind: a write that blocks, or a backlog in the
kernel's send queue while writes return at once into large socket buffers). Both are
remembered as shares of the last ~LINK_MEMORY seconds (decayed sums), because a link is bursty
seen from the writer: buffers take frames at once for a while and then a write blocks about as
long, and TCP's slow start on a 70 ms path blocks the first writes for ~0.6 s. A window of
frames alone said "compressor behind" while the buffers filled, and kept text stored on the
50 MB/s, 70 ms link.

* the link was busy over LINK_BEHIND of the time -> one step more effort;
* the writer waited for compression over COMPRESSOR_BEHIND of the time, and longer than the
  link kept it busy -> one step cheaper. Once a write has blocked for SLOW_WRITE (buffers that
  take that long to drain), decisions wait HOLD seconds and a step down LINK_MEMORY seconds at
  the step: its own effect must fill the memory first, or the draining buffers run the level
  down to stored.

It starts at a stored frame: on loopback or a fast LAN the link never backs up, so nothing is
spent (the receiver shares our CPUs on loopback: any compression costs it time too), while a
slow link backs up within the first window. A step up is on probation for its first window:
if that carries (input bytes the transport sent, not what its buffers took) less than
UNDO_BELOW of what the step below carried, it is undone at once: the writer was held up by a
receiver that shares our CPUs, not by the link. A step down from a step reached by a step up
means that climb did not pay: the next climb to it needs twice as many link-bound windows in a
row (up to MAX_PATIENCE), so the level settles instead of swinging between two steps.

Steps run over a ladder of zstd settings, from a stored frame (raw blocks: a copy, no search)
through a fast negative level to the zstd levels that `N` allows. A chunk that does not
shrink at the level it got sends the next ones stored for a while (doubling each time it
still does not shrink, up to MAX_STORED_RUN chunks: zstd gives up on random data at GB/s, so
a short run costs little and a folder's text after its random files is not missed).

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
#: seconds over which the link's and compressor's busy shares are remembered (decay constant)
LINK_MEMORY: Final = 0.5
#: the writer waiting this share of the time for compression means the compressor is behind
COMPRESSOR_BEHIND: Final = 0.20
#: writing taking this share of the time means the link is behind
LINK_BEHIND: Final = 0.50
#: seconds at a step before the next decision: its effect must reach the memory first
HOLD: Final = 0.1
#: unsent bytes in the transport that show the link behind: more than a few frames queued
BACKLOG_BUSY: Final = 1 << 20
#: a write blocking this long shows buffers that take as long to drain (a slow or far link):
#: from then on decisions wait for HOLD, and a step down for LINK_MEMORY at the step
SLOW_WRITE: Final = 0.05
#: a step up whose first window (PROBATION seconds at least) carries less than this share of the
#: input per second the step below carried is undone at once
UNDO_BELOW: Final = 0.6
PROBATION: Final = 0.05
#: a compressed chunk bigger than this share of its input did not shrink
NO_GAIN: Final = 0.97
#: link-bound windows in a row needed to climb to a step that proved too costly, at most
MAX_PATIENCE: Final = 64
#: chunks sent stored after one did not shrink; doubles while the input stays incompressible
STORED_RUN: Final = 8
MAX_STORED_RUN: Final = 16


def ladder(max_level: int) -> list[int]:
    """The zstd settings from cheapest to most effort for `-compress max_level` (1-9)."""
    top = zstd_level(max_level)
    return [STORED, FAST_LEVEL, *sorted({zstd_level(n) for n in range(1, 10) if zstd_level(n) <= top})]


class LevelController:
    """Chooses the zstd setting for each chunk from measurements the sender reports."""

    def __init__(self, max_level: int, *, start_level: int = 0) -> None:
        """start_level: 0 starts at a stored frame, 1-9 at that level's zstd setting."""
        self.steps = ladder(max_level)
        #: writing, waiting-for-compression and wall time of the last ~LINK_MEMORY s (decayed)
        self._busy = 0.0
        self._wait = 0.0
        self._moved = 0.0
        self._span = 0.0
        self._backlog = 0  # the transport's unsent bytes after the last write
        start = zstd_level(min(start_level, max_level)) if start_level else STORED
        self._index = self.steps.index(start)
        #: per step: link-bound windows in a row needed before climbing to it
        self._patience = [1] * len(self.steps)
        self._link_bound = 0
        self._climbed = False  # the current step was reached by a step up
        self._slow_seen = False  # a write blocked for SLOW_WRITE: the link buffers a lot
        self._stored_left = 0
        self._stored_run = STORED_RUN
        self._frames = 0  # frames at the current step since the last decision
        self._held = 0.0  # their wall time
        self._at_step = 0.0  # wall time since the step was taken
        self._window_bytes = 0.0  # input bytes they carried
        #: after a step up, the input rate (decayed) it has to keep; None when not on probation
        self._rate_at_climb: float | None = None

    def _step_down(self) -> None:
        if self._climbed:  # that step up did not pay: be slower to try it again
            self._patience[self._index] = min(self._patience[self._index] * 2, MAX_PATIENCE)
        self._index, self._link_bound, self._climbed = self._index - 1, 0, False
        self._at_step = 0.0

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

    def on_written(
        self, level: int, raw_len: int, waited: float, writing: float, elapsed: float,
        backlog: int = 0, wire_len: int = 0,
    ) -> None:
        """The writer sent one Data frame made at `level` from `raw_len` input bytes.

        waited: seconds it waited for the frame's compression; writing: seconds the write took;
        elapsed: seconds since the previous frame's write ended (the frame's share of wall time);
        backlog: bytes the transport held unsent after the write (the kernel's send queue);
        wire_len: the frame's size on the wire (0: as `raw_len`).
        Every frame feeds the memory of how busy the link and the compressor were; only frames
        made at the current setting (not ones in flight across a change) fill a window.
        """
        wall = max(elapsed, waited + writing)
        keep = math.exp(-wall / LINK_MEMORY)
        # a backlog in the transport keeps the link busy for the whole frame, even when the
        # write itself returned at once (large socket buffers)
        self._busy = self._busy * keep + (wall if backlog >= BACKLOG_BUSY else writing)
        self._wait = self._wait * keep + waited
        # input carried: what the transport sent meanwhile (not what its buffers took), in input
        # bytes at this frame's ratio
        wire = wire_len or raw_len
        sent = max(0, wire + self._backlog - backlog) * raw_len / wire
        self._backlog = backlog
        self._moved = self._moved * keep + sent
        self._span = self._span * keep + wall
        if level != self.current:
            return
        self._slow_seen = self._slow_seen or writing >= SLOW_WRITE
        self._frames += 1
        self._held += wall
        self._at_step += wall
        self._window_bytes += sent
        hold = PROBATION if self._rate_at_climb is not None else HOLD if self._slow_seen else 0.0
        if self._frames < WINDOW or self._held < hold:
            return
        span = max(self._span, 1e-9)
        busy, wait = self._busy / span, self._wait / span
        rate_at_climb, self._rate_at_climb = self._rate_at_climb, None
        if rate_at_climb is not None:  # the first window after a step up: judge only that step
            if self._window_bytes / max(self._held, 1e-9) < rate_at_climb * UNDO_BELOW:
                # the writer was held up by a receiver that shares our CPUs (loopback), not by
                # the link: more effort only takes CPU from it
                self._step_down()
        elif busy > LINK_BEHIND:
            self._link_bound += 1
            up = self._index + 1
            if up < len(self.steps) and self._link_bound >= self._patience[up]:
                self._index, self._link_bound, self._climbed = up, 0, True
                self._at_step = 0.0
                self._rate_at_climb = self._moved / span
        elif wait > max(COMPRESSOR_BEHIND, busy) and self._index > 0 and (
            self._at_step >= LINK_MEMORY or not self._slow_seen
        ):
            self._step_down()
        else:
            self._link_bound = 0
        self._frames = 0
        self._held = 0.0
        self._window_bytes = 0.0

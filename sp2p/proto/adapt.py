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

The backlog counts as the link being behind only when the link, at the pace it has been taking
bytes (wire bytes sent per second, decayed), needs more than QUEUE_BUSY to send it: a loopback
receiver leaves MiBs unsent that it takes within milliseconds, a capped or far link needs
hundreds of ms for the same.

* the link was busy over LINK_BEHIND of the time -> one step more effort;
* the writer waited for compression over COMPRESSOR_BEHIND of the time, longer than the link
  kept it busy, and the link has no more than QUEUE_BUSY of work queued (with that much queued
  the writer waits for zstd only because the buffers take frames at once) -> one step cheaper.
  Once a write has blocked for SLOW_WRITE (buffers that take that long to drain), decisions
  wait HOLD seconds and a step down LINK_MEMORY seconds at the step: its own effect must fill
  the memory first, or the draining buffers run the level down to stored.

Where it starts: on a link with a round trip of FAR_RTT or more, at the most effort allowed
(TCP's slow start carries only a few MiB in its first ~10 round trips, and a stored frame
costs as much of them as five level-3 frames; the buffers take frames at once meanwhile, so
nothing shows the link behind before they are full of stored ones); elsewhere, and where the
round trip is unknown, at a stored frame (a LAN or fast link may never back up). A receiver on
this host gets no zstd at all (announce_zstd), or only stored frames where zstd was announced
before (a transfer healed onto such a link): its link is a memory copy, faster than any zstd
level, and its work (hashing, writing, decompressing) shares our CPUs, so its backlog is its
pace, not a link's, and compression only takes CPU from it.

A step is judged by its own frames: input bytes of frames made at it that the transport sent,
at their own ratio, from when the first of them left (frames queued from before leave first,
at the earlier step's pace). A step up is on probation for its first window: if that carries
less than UNDO_BELOW of the input per second the step below carried, it is undone at once: the
writer was held up by a receiver bound by its CPU, not by the link. A step down from a step
reached by a step up means that climb did not pay: the next climb to it needs twice as many
link-bound windows in a row (up to MAX_PATIENCE), so the level settles instead of swinging
between two steps.

Steps run over a ladder of zstd settings, from a stored frame (raw blocks: a copy, no search)
through a fast negative level to the zstd levels that `N` allows. A chunk that does not
shrink at the level it got sends the next ones stored for a while (doubling each time it
still does not shrink, up to MAX_STORED_RUN chunks: zstd gives up on random data at GB/s, so
a short run costs little and a folder's text after its random files is not missed).

Sans-IO: the caller measures time and reports it; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
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
#: unsent bytes in the transport that can show the link behind: more than a few frames queued
BACKLOG_BUSY: Final = 1 << 20
#: ... if the link, at the pace it has been taking bytes, needs longer than this to send them.
#: A loopback receiver takes a few MiB within milliseconds (it is bounded by CPU, not by bytes);
#: a far or capped link needs hundreds of ms for the same backlog
QUEUE_BUSY: Final = 0.02
#: a link with at least this round-trip time starts at the most effort allowed: TCP's slow start
#: takes ~10 round trips to carry its first few MiB, where each frame made at level 3 carries
#: about five times the input a stored one does (and the buffers take frames at once meanwhile,
#: so nothing shows the link behind until they are full of stored frames)
FAR_RTT: Final = 0.01
#: a write blocking this long shows buffers that take as long to drain (a slow or far link):
#: from then on decisions wait for HOLD, and a step down for LINK_MEMORY at the step
SLOW_WRITE: Final = 0.05
#: a step up whose first window (PROBATION seconds at least) carries less than this share of the
#: input per second the step below carried is undone at once
UNDO_BELOW: Final = 0.8
PROBATION: Final = 0.02
#: a compressed chunk bigger than this share of its input did not shrink
NO_GAIN: Final = 0.97
#: link-bound windows in a row needed to climb to a step that proved too costly, at most
MAX_PATIENCE: Final = 64
#: chunks sent stored after one did not shrink; doubles while the input stays incompressible
STORED_RUN: Final = 8
MAX_STORED_RUN: Final = 16


def announce_zstd(same_host: bool) -> bool:
    """Whether zstd is worth announcing at all: not to a receiver on this host. Its link is a
    memory copy, so no level pays, and even stored frames cost a copy on each side and the
    receiver's zstd import (measured ~5-10 % of a loopback transfer)."""
    return not same_host


def start_level(max_level: int, round_trip: float | None) -> int:
    """The `-compress` level a transfer starts at: `max_level` on a far link, else 0 (stored)."""
    return max_level if round_trip is not None and round_trip >= FAR_RTT else 0


def ladder(max_level: int) -> list[int]:
    """The zstd settings from cheapest to most effort for `-compress max_level` (1-9)."""
    top = zstd_level(max_level)
    return [STORED, FAST_LEVEL, *sorted({zstd_level(n) for n in range(1, 10) if zstd_level(n) <= top})]


class LevelController:
    """Chooses the zstd setting for each chunk from measurements the sender reports."""

    def __init__(self, max_level: int, *, start_level: int = 0, same_host: bool = False) -> None:
        """start_level: 0 starts at a stored frame, 1-9 at that level's zstd setting.

        same_host: the receiver runs on this host. Its link is a memory copy, faster than any
        zstd level, and it shares our CPUs: whatever the link seems to say (its backlog is the
        receiver's pace), compression only takes CPU from it, so every frame is stored.
        """
        self.steps = [STORED] if same_host else ladder(max_level)
        start_level = 0 if same_host else start_level
        #: writing, waiting-for-compression and wall time of the last ~LINK_MEMORY s (decayed)
        self._busy = 0.0
        self._wait = 0.0
        self._moved = 0.0  # input bytes the transport sent
        self._drained = 0.0  # wire bytes the transport sent: its pace, with _span
        self._span = 0.0
        self._backlog = 0  # the transport's unsent bytes after the last write
        #: the frames those bytes belong to, oldest first: [wire bytes unsent, input bytes per
        #: wire byte, setting], so what the transport sends is counted at its own frame's ratio
        self._unsent: deque[list[float]] = deque()
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
        self._window_bytes = 0.0  # input bytes of frames made at the step the transport sent
        self._carried = 0.0  # wall time since the first of them left
        #: after a step up, the input rate it has to keep; None when not on probation
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

    def _take_sent(self, sent: float) -> tuple[float, float]:
        """The transport sent `sent` more bytes: the input bytes they carry, all and of frames
        made at the current setting."""
        carried = current = 0.0
        unsent, setting = self._unsent, self.current
        while sent > 0 and unsent:
            frame = unsent[0]
            part = min(sent, frame[0])
            carried += part * frame[1]
            if frame[2] == setting:
                current += part * frame[1]
            sent -= part
            frame[0] -= part
            if frame[0] <= 0:
                unsent.popleft()
        return carried, current

    def _queue_time(self, backlog: int) -> float:
        """Seconds the link needs to send `backlog` bytes at the pace it has been taking them."""
        if backlog <= 0:
            return 0.0
        pace = self._drained / max(self._span, 1e-9)
        return backlog / pace if pace > 0 else math.inf

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
        # what the transport sent meanwhile (not what its buffers took)
        wire = wire_len or raw_len
        self._unsent.append([wire, raw_len / wire, level])
        drained = max(0, wire + self._backlog - backlog)
        self._backlog = backlog
        carried, carried_here = self._take_sent(drained)
        self._drained = self._drained * keep + drained
        self._moved = self._moved * keep + carried
        self._span = self._span * keep + wall
        queue_time = self._queue_time(backlog)
        #: the link has a while's work queued: it is not waiting for us (whatever the writer did)
        queued = queue_time > QUEUE_BUSY
        # a backlog of some size that the link needs a while to send keeps it busy for the whole
        # frame, even when the write itself returned at once (large socket buffers)
        self._busy = self._busy * keep + (wall if queued and backlog >= BACKLOG_BUSY else writing)
        self._wait = self._wait * keep + waited
        if level != self.current:
            return
        self._slow_seen = self._slow_seen or writing >= SLOW_WRITE
        self._frames += 1
        self._held += wall
        self._at_step += wall
        # a step's rate: input bytes of its own frames the transport sent, from when the first of
        # them left (what the buffers held from before leaves at the earlier setting's pace)
        if self._window_bytes or carried_here:
            self._carried += wall
        self._window_bytes += carried_here
        probation = self._rate_at_climb is not None
        hold = PROBATION if probation else HOLD if self._slow_seen else 0.0
        # a window decides once its own frames have left for a while: what it is judged by
        if self._frames < WINDOW or self._held < hold or self._carried < max(hold, 1e-9):
            return
        span = max(self._span, 1e-9)
        busy, wait = self._busy / span, self._wait / span
        rate = self._window_bytes / max(self._carried, 1e-9)
        rate_at_climb, self._rate_at_climb = self._rate_at_climb, None
        if rate_at_climb is not None:  # the first window after a step up: judge only that step
            if rate < rate_at_climb * UNDO_BELOW:
                # the step carries less input per second: the writer was held up by a receiver
                # that shares our CPUs (loopback), not by the link, and more effort only takes
                # CPU from it
                self._step_down()
        elif busy > LINK_BEHIND:
            self._link_bound += 1
            up = self._index + 1
            if up < len(self.steps) and self._link_bound >= self._patience[up]:
                self._index, self._link_bound, self._climbed = up, 0, True
                self._at_step = 0.0
                self._rate_at_climb = max(rate, self._moved / span)
        elif wait > max(COMPRESSOR_BEHIND, busy) and self._index > 0 and not queued and (
            self._at_step >= LINK_MEMORY or not self._slow_seen
        ):
            self._step_down()
        else:
            self._link_bound = 0
        self._frames = 0
        self._held = self._carried = 0.0
        self._window_bytes = 0.0

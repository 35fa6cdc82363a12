"""The adaptive controller (sp2p/proto/adapt.py) on the paths issue 12 measures, driven by a small
model of the transport: the writer's frames queue unsent in the kernel, and the link (or the
receiver behind it) takes them at its own pace, oldest first."""

from __future__ import annotations

from collections import deque

from sp2p.proto.adapt import FAR_RTT, FAST_LEVEL, LevelController, start_level
from sp2p.proto.compression import STORED

CHUNK = 256 * 1024
#: wire bytes per input byte at each setting on text (zstd on Python sources and docs)
RATIO = {STORED: 1.0, FAST_LEVEL: 0.29, 1: 0.21, 3: 0.2}


class Path:
    """Unsent frames in the kernel, drained in order by a link that takes `wire_rate` bytes/s,
    or (wire_rate 0) by a receiver bound by its CPU, which takes `input_rate` input bytes/s of
    stored frames and `zstd_input_rate` of compressed ones."""

    def __init__(self, *, wire_rate: float = 0.0, input_rate: float = 0.0, zstd_input_rate: float = 0.0,
                 buffer: int = 32 << 20) -> None:
        self.wire_rate, self.buffer = wire_rate, buffer
        self.input_rate, self.zstd_input_rate = input_rate, zstd_input_rate or input_rate
        self.unsent: deque[list[float]] = deque()  # [wire bytes left, input bytes per wire byte]

    def backlog(self) -> int:
        return round(sum(frame[0] for frame in self.unsent))

    def run(self, seconds: float) -> None:
        while self.unsent and seconds > 1e-12:
            frame = self.unsent[0]
            # wire bytes per second this frame leaves at
            receiver = (self.input_rate if frame[1] == 1.0 else self.zstd_input_rate) / frame[1]
            rate = self.wire_rate or receiver
            part = min(frame[0], rate * seconds)
            frame[0] -= part
            seconds -= part / rate
            if frame[0] <= 1e-6:
                self.unsent.popleft()

    def send(self, ctl: LevelController, seconds: float, *, make: float, stall_rate: float = 0.0) -> list[int]:
        """The writer sends frames for `seconds`, each ready `make` seconds after the last (its
        compression), blocking while the buffer is full. Returns the setting after each frame."""
        seen, clock = [], 0.0
        while clock < seconds:
            level = ctl.current
            wire = CHUNK * RATIO[level]
            self.run(make)
            writing = 0.0
            while self.backlog() + wire > self.buffer:  # the write blocks until there is room
                self.run(0.001)
                writing += 0.001
            self.unsent.append([wire, 1 / RATIO[level]])
            waited = make if level != STORED else 0.0
            ctl.on_written(level, CHUNK, waited, writing, make + writing, self.backlog(), round(wire))
            clock += make + writing
            seen.append(ctl.current)
        return seen


def test_a_far_link_starts_at_the_most_effort_allowed() -> None:
    assert start_level(3, 0.07) == 3 and start_level(9, FAR_RTT) == 9
    assert start_level(3, 0.0002) == 0  # loopback, LAN
    assert start_level(3, None) == 0  # unknown (WebRTC): measured from stored up


def test_slow_start_keeps_the_most_effort_while_the_buffers_take_frames() -> None:
    """70 ms link, first round trips: the socket buffers take every frame at once and the link
    sends almost nothing, so the writer only ever waits for zstd. That is not the compressor
    being behind: the link has seconds of work queued."""
    ctl = LevelController(3, start_level=start_level(3, 0.07))
    path = Path(wire_rate=0.5e6)  # ~35 KB per 70 ms round trip
    assert set(path.send(ctl, 0.3, make=0.0013)) == {3}


def test_a_capped_link_after_slow_start_keeps_the_level() -> None:
    """400 Mbit/s and the bench's socket buffers, full after slow start; two workers make a
    level-3 frame every 0.7 ms, a little more than the link takes."""
    ctl = LevelController(3, start_level=3)
    path = Path(wire_rate=50e6, buffer=26 << 20)
    path.unsent.extend([CHUNK * 0.2, 5.0] for _ in range(400))  # slow start filled the buffers
    assert set(path.send(ctl, 1.5, make=0.0007)) == {3}


def test_a_compressor_slower_than_the_link_steps_down() -> None:
    """The same link, a compressor that makes less than it takes: the backlog stays empty."""
    ctl = LevelController(3, start_level=3)
    path = Path(wire_rate=50e6, buffer=26 << 20)
    assert path.send(ctl, 0.5, make=0.002)[-1] != 3


def test_a_receiver_on_this_host_gets_stored_frames_whatever_the_backlog_says() -> None:
    ctl = LevelController(3, start_level=3, same_host=True)
    assert ctl.current == STORED and ctl.steps == [STORED]
    path = Path(input_rate=100e6, buffer=6 << 20)  # a loaded receiver: MiBs wait for it
    assert set(path.send(ctl, 0.5, make=0.0004)) == {STORED}
    assert ctl.next_level() == STORED


def test_a_backlog_a_fast_receiver_takes_within_milliseconds_is_no_busy_link() -> None:
    """Loopback-like: the writer makes stored frames faster than the receiver takes them, so
    MiBs stay unsent; but at its pace that is a few ms of work, not a link that is behind."""
    ctl = LevelController(3)
    path = Path(input_rate=500e6, buffer=4 << 20)
    assert set(path.send(ctl, 0.3, make=0.0004)) == {STORED}


def test_a_slow_link_climbs_from_stored() -> None:
    """100 Mbit/s with an autotuned 4 MiB buffer: 0.3 s of work queued."""
    ctl = LevelController(3)
    seen = Path(wire_rate=12.5e6, buffer=4 << 20).send(ctl, 1.0, make=0.0004)
    assert seen[0] == STORED and seen[-1] != STORED


def test_a_step_up_is_judged_by_its_own_frames_not_the_stored_ones_ahead_of_them() -> None:
    """A receiver bound by its CPU per input byte, 8 MiB of stored frames queued for it when the
    controller climbs: those leave first, at the stored rate, and judged at the new setting's
    ratio they would look 3x faster and keep the climb. The fast level's own frames leave at
    half the input rate (our compression takes the receiver's CPUs), so the climb is undone."""
    ctl = LevelController(3)
    path = Path(input_rate=100e6, zstd_input_rate=50e6, buffer=8 << 20)
    seen = path.send(ctl, 0.6, make=0.0004)
    climbed = seen.index(FAST_LEVEL)
    undone = seen.index(STORED, climbed)
    assert set(seen[undone:]) == {STORED}  # and the next try waits longer

"""The adaptive compression controller (sp2p/proto/adapt.py), driven by injected measurements."""

from __future__ import annotations

import os

import zstandard

from sp2p.proto.adapt import (
    BACKLOG_BUSY,
    FAST_LEVEL,
    HOLD,
    LINK_MEMORY,
    MAX_STORED_RUN,
    PROBATION,
    STORED_RUN,
    WINDOW,
    LevelController,
    ladder,
)
from sp2p.proto.compression import STORED, ChunkCompressor, ChunkDecompressor, stored_frame

CHUNK = 256 * 1024
#: one frame's wall time in the tests below: 2 ms (a 256 KiB chunk at ~130 MB/s)
FRAME = 0.002


def feed(ctl: LevelController, seconds: float, *, waiting: float = 0.0, writing: float = 0.0,
         frame: float = FRAME) -> list[int]:
    """Frames at the current setting for `seconds`: the writer waited for compression `waiting`
    and wrote `writing` of each frame's wall time. Returns the setting after each frame."""
    seen = []
    for _ in range(max(1, round(seconds / frame))):
        ctl.on_written(ctl.current, CHUNK, waiting * frame, writing * frame, frame)
        seen.append(ctl.current)
    return seen


def slow_start(ctl: LevelController) -> None:
    """One write that blocks for 0.3 s, as TCP's slow start on a 70 ms path does."""
    ctl.on_written(ctl.current, CHUNK, 0.0, 0.3, 0.3)


def _window(ctl: LevelController, *, waited: float, writing: float, elapsed: float) -> None:
    for _ in range(WINDOW):
        ctl.on_written(ctl.current, CHUNK, waited, writing, elapsed)


def test_ladder_stays_within_the_maximum() -> None:
    assert ladder(1) == [STORED, FAST_LEVEL, 1]
    assert ladder(3) == [STORED, FAST_LEVEL, 1, 3]
    assert ladder(9) == [STORED, FAST_LEVEL, 1, 3, 7, 11]


def test_starts_stored_and_stays_there_while_the_link_has_room() -> None:
    """Loopback: the writer mostly waits for the reader; writes return at once."""
    ctl = LevelController(3)
    assert ctl.current == STORED and ctl.next_level() == STORED
    assert set(feed(ctl, 1.0, writing=0.15)) == {STORED}
    assert set(feed(ctl, 0.01, writing=0.95)) == {STORED}  # one slow moment is not a busy link


def test_a_busy_link_climbs_a_step_per_hold_up_to_the_maximum() -> None:
    ctl = LevelController(3)
    slow_start(ctl)
    seen = feed(ctl, 2.0, writing=0.95)
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [STORED, FAST_LEVEL, 1, 3]
    # after a write that blocked that long, a decision waits for HOLD seconds at the step
    assert seen.index(1) - seen.index(FAST_LEVEL) >= HOLD / FRAME
    assert ctl.current == 3 and ctl.next_level() == 3


def test_on_a_link_with_small_buffers_every_window_decides() -> None:
    """A LAN: no write ever blocks long, so the link's state shows within a window."""
    ctl = LevelController(3)
    seen = feed(ctl, 0.5, writing=0.95)
    # per climb a window, then a window of probation: no HOLD
    assert seen.index(3) * FRAME <= 3 * (WINDOW * FRAME + PROBATION + FRAME)


def test_compressor_behind_on_a_link_never_busy_steps_down_at_once() -> None:
    """A fast link (or loopback) from a higher start: every window the writer waited for zstd."""
    ctl = LevelController(3, start_level=3)
    for expected in (1, FAST_LEVEL, STORED, STORED):
        _window(ctl, waited=0.002, writing=0.0001, elapsed=0.0025)
        assert ctl.current == expected


def test_after_the_link_was_busy_a_step_down_waits_for_the_memory() -> None:
    """The buffers drain at a step too costly for the compressor: it steps down one step, then
    gives the cheaper step LINK_MEMORY seconds to fill them again, instead of falling to stored."""
    ctl = LevelController(3)
    slow_start(ctl)
    feed(ctl, 2.0, writing=0.95)
    assert ctl.current == 3
    while ctl.current == 3:  # the buffers drain; once the memory says so, one step down
        feed(ctl, FRAME, waiting=0.9, writing=0.02)
    assert ctl.current == 1
    assert set(feed(ctl, LINK_MEMORY * 0.9, waiting=0.9, writing=0.02)) == {1}
    assert feed(ctl, LINK_MEMORY * 0.2, waiting=0.9, writing=0.02)[-1] == FAST_LEVEL


def test_a_step_up_that_did_not_pay_is_retried_ever_more_slowly() -> None:
    ctl = LevelController(1)  # ladder: stored, fast, 1
    slow_start(ctl)
    feed(ctl, 0.5, writing=0.95)
    assert ctl.current == 1
    decisions_to_climb = []
    for _ in range(4):
        while ctl.current == 1:  # level 1 too costly for the compressor: back to the fast level
            feed(ctl, FRAME, waiting=0.9, writing=0.02)
        assert ctl.current == FAST_LEVEL
        n = 0
        while ctl.current == FAST_LEVEL:  # the link gets busy again (after its memory turns)
            feed(ctl, HOLD, writing=0.95)
            n += 1
        decisions_to_climb.append(n)
    # link-bound decisions in a row: 2, 4, 8, 16 (plus a few while the memory turns)
    assert decisions_to_climb == sorted(decisions_to_climb) and decisions_to_climb[-1] >= 16


def test_a_step_up_that_carries_less_is_undone_at_once() -> None:
    """Loopback under load: the writer waits on a receiver that shares our CPUs, which looks
    like a busy link; the fast level then carries a third of the input per second (its CPU is
    taken from the receiver), so the first window back at it steps down, and the next try waits
    twice as long."""
    ctl = LevelController(3)
    windows_to_climb = []
    for _ in range(4):
        n = 0
        while ctl.current == STORED:
            feed(ctl, FRAME * WINDOW, writing=0.8)  # 2 ms per 256 KiB frame, mostly writing
            n += 1
        windows_to_climb.append(n)
        assert ctl.current == FAST_LEVEL
        seen = feed(ctl, FRAME * 3 * WINDOW, writing=0.1, frame=FRAME * 3)  # a third of the rate
        assert seen[-2] == FAST_LEVEL and seen[-1] == STORED  # one window, no HOLD on probation
    # link-bound windows in a row: 1, 2, 4, 8 (plus up to a few while the memory of the slow
    # window turns)
    assert windows_to_climb[0] == 1 and windows_to_climb[-1] >= 8
    assert windows_to_climb == sorted(windows_to_climb)


def test_a_backlog_in_the_transport_is_a_busy_link_and_buffered_bytes_carry_nothing() -> None:
    """Large socket buffers: writes return at once while the kernel queues MiBs unsent. That
    backlog is the link being behind; and the input the buffers took is not input carried, so
    the fast level (which the link drains 3x faster in input terms) is not undone for the
    "rate" stored frames seemed to have while they filled the buffers."""
    ctl = LevelController(3)
    backlog = 0
    while ctl.current == STORED:  # 256 KiB frames every 1 ms, the link sends a tenth of them
        backlog += CHUNK - CHUNK // 10
        ctl.on_written(STORED, CHUNK, 0.0, 0.0001, 0.001, backlog, CHUNK)
    assert ctl.current == FAST_LEVEL and backlog >= BACKLOG_BUSY
    for _ in range(round(PROBATION / 0.003) + WINDOW):  # 3x smaller frames, now every 3 ms
        backlog -= CHUNK // 10 * 3 - CHUNK // 3  # the link sends 3 of its tenths meanwhile
        ctl.on_written(FAST_LEVEL, CHUNK, 0.002, 0.0001, 0.003, max(backlog, 0), CHUNK // 3)
    assert ctl.current != STORED


def test_a_bursty_capped_link_keeps_the_level() -> None:
    """Socket buffers on a capped link: for a while writes return at once and the writer waits
    for the compressor, then one write blocks for a few hundred ms. Judged over the last half
    second the link is busy, so the waits in between do not step down."""
    ctl = LevelController(3, start_level=3)
    ctl.on_written(3, CHUNK, 0.0, 0.4, 0.4)  # the buffers filled: the link is busy
    for _ in range(4):
        feed(ctl, 0.1, waiting=0.9, writing=0.05)  # buffers have room: the writer waits for zstd
        ctl.on_written(3, CHUNK, 0.0, 0.3, 0.3)  # full again: the link drains them
    assert ctl.current == 3


def test_frames_made_at_another_setting_fill_no_window() -> None:
    ctl = LevelController(3, start_level=3)
    for _ in range(WINDOW * 3):
        ctl.on_written(STORED, CHUNK, 0.002, 0.0, 0.0025)  # a stored run, or in flight from before
    assert ctl.current == 3
    _window(ctl, waited=0.002, writing=0.0, elapsed=0.0025)
    assert ctl.current == 1


def test_a_window_decides_only_once_full() -> None:
    ctl = LevelController(3, start_level=3)
    for _ in range(WINDOW - 1):
        ctl.on_written(3, CHUNK, 0.002, 0.0, 0.0025)
    assert ctl.current == 3
    ctl.on_written(3, CHUNK, 0.002, 0.0, 0.0025)
    assert ctl.current == 1


def test_incompressible_chunks_send_stored_runs_that_double() -> None:
    ctl = LevelController(3, start_level=1)
    ctl.on_compressed(1, 262144, 262144)
    run = [ctl.next_level() for _ in range(STORED_RUN)]
    assert run == [STORED] * STORED_RUN
    assert ctl.next_level() == 1  # a probe at the real setting
    ctl.on_compressed(1, 262144, 262100)
    assert [ctl.next_level() for _ in range(2 * STORED_RUN)] == [STORED] * (2 * STORED_RUN)
    for _ in range(10):
        ctl.on_compressed(1, 262144, 262144)
    assert sum(ctl.next_level() == STORED for _ in range(MAX_STORED_RUN + 1)) == MAX_STORED_RUN
    ctl.on_compressed(1, 262144, 50000)  # compressible again: back to short runs
    ctl.on_compressed(1, 262144, 262144)
    assert sum(ctl.next_level() == STORED for _ in range(STORED_RUN + 1)) == STORED_RUN


def test_a_stored_run_is_short_enough_to_catch_text_after_random_files() -> None:
    """A folder: 64 MiB of random files, then text. The probe after the longest run comes within
    MAX_STORED_RUN chunks (4 MiB) of the text's start."""
    assert MAX_STORED_RUN * CHUNK <= 4 << 20


def test_every_setting_makes_one_independent_frame_any_decoder_reads() -> None:
    text = b"".join(b"line %d of some text that repeats a little\n" % i for i in range(8000))
    chunks = [text[:262144], os.urandom(262144), b"x", os.urandom(131073)]
    comp = ChunkCompressor(9)
    for level in ladder(9):
        for chunk in chunks:
            frame = comp.compress_at(chunk, level)
            assert zstandard.get_frame_parameters(frame).content_size == len(chunk)
            assert ChunkDecompressor().decompress(frame) == chunk
            assert zstandard.ZstdDecompressor().decompress(frame) == chunk
    assert stored_frame(b"") == b"\x28\xb5\x2f\xfd\xa0\x00\x00\x00\x00\x01\x00\x00"
    assert ChunkDecompressor().decompress(stored_frame(b"")) == b""

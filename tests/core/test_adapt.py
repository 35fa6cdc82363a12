"""The adaptive compression controller (sp2p/proto/adapt.py), driven by injected measurements."""

from __future__ import annotations

import os

import zstandard

from sp2p.proto.adapt import FAST_LEVEL, MAX_STORED_RUN, STORED_RUN, WINDOW, LevelController, ladder
from sp2p.proto.compression import STORED, ChunkCompressor, ChunkDecompressor, stored_frame

CHUNK = 256 * 1024


def _ctl(max_level: int, **kw: int) -> LevelController:
    return LevelController(max_level, **kw)


def _window(ctl: LevelController, *, waited: float, writing: float, elapsed: float) -> None:
    for _ in range(WINDOW):
        ctl.on_written(ctl.current, CHUNK, waited, writing, elapsed)


def test_ladder_stays_within_the_maximum() -> None:
    assert ladder(1) == [STORED, FAST_LEVEL, 1]
    assert ladder(3) == [STORED, FAST_LEVEL, 1, 3]
    assert ladder(9) == [STORED, FAST_LEVEL, 1, 3, 7, 11]


def test_compressor_behind_steps_down_to_stored_and_no_further() -> None:
    ctl = _ctl(3)
    assert ctl.current == 1
    for expected in (FAST_LEVEL, STORED, STORED):
        _window(ctl, waited=0.002, writing=0.0001, elapsed=0.003)
        assert ctl.current == expected
    assert ctl.next_level() == STORED


def test_link_behind_steps_up_to_the_maximum_and_no_further() -> None:
    ctl = _ctl(3)
    _window(ctl, waited=0.0, writing=0.02, elapsed=0.021)
    assert ctl.current == 3
    for _ in range(3):  # smaller frames on a slow link: more input per second, so it stays
        _window(ctl, waited=0.0, writing=0.015, elapsed=0.016)
        assert ctl.current == 3
    assert ctl.next_level() == 3


def test_a_step_up_that_carries_no_more_is_undone() -> None:
    """Loopback: the writer waits on a receiver that shares our CPU; more effort does not help."""
    ctl = _ctl(3, start_level=1)
    _window(ctl, waited=0.0, writing=0.004, elapsed=0.005)
    assert ctl.current == 3
    _window(ctl, waited=0.0, writing=0.004, elapsed=0.005)  # same input rate: not worth it
    assert ctl.current == 1
    _window(ctl, waited=0.0, writing=0.004, elapsed=0.005)  # patience: two link-bound windows now
    assert ctl.current == 1
    _window(ctl, waited=0.0, writing=0.004, elapsed=0.005)
    assert ctl.current == 3


def test_balanced_or_input_bound_holds_the_level() -> None:
    ctl = _ctl(9, start_level=3)
    _window(ctl, waited=0.0002, writing=0.001, elapsed=0.004)  # reader-bound: both idle
    assert ctl.current == 3
    _window(ctl, waited=0.0002, writing=0.003, elapsed=0.004)  # small waits: not idle enough to rise
    assert ctl.current == 3


def test_frames_made_at_another_setting_do_not_count() -> None:
    ctl = _ctl(3)
    for _ in range(WINDOW * 3):
        ctl.on_written(3, CHUNK, 0.01, 0.0, 0.01)  # in flight from before a change
    assert ctl.current == 1
    _window(ctl, waited=0.01, writing=0.0, elapsed=0.01)
    assert ctl.current == FAST_LEVEL


def test_a_window_decides_only_once_full() -> None:
    ctl = _ctl(3)
    for _ in range(WINDOW - 1):
        ctl.on_written(1, CHUNK, 0.01, 0.0, 0.01)
    assert ctl.current == 1
    ctl.on_written(1, CHUNK, 0.01, 0.0, 0.01)
    assert ctl.current == FAST_LEVEL


def test_incompressible_chunks_send_stored_runs_that_double() -> None:
    ctl = _ctl(3)
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


def test_a_step_up_the_compressor_cannot_hold_is_retried_ever_more_slowly() -> None:
    ctl = _ctl(3, start_level=1)
    _window(ctl, waited=0.01, writing=0.0, elapsed=0.01)
    _window(ctl, waited=0.01, writing=0.0, elapsed=0.01)
    assert ctl.current == STORED
    link_bound = {"waited": 0.0, "writing": 0.02, "elapsed": 0.021}
    behind = {"waited": 0.01, "writing": 0.0, "elapsed": 0.01}
    windows_to_climb = []
    for _ in range(4):
        n = 0
        while ctl.current == STORED:
            _window(ctl, **link_bound)
            n += 1
        windows_to_climb.append(n)
        for _ in range(3):  # the fast level is too much: back down once the link's busy spell fades
            _window(ctl, **behind)
        assert ctl.current == STORED
    assert windows_to_climb == [1, 2, 4, 8]


def test_a_bursty_capped_link_counts_as_link_bound() -> None:
    """Socket buffers on a capped link: for a while writes return at once and the writer waits
    for the compressor, then one write blocks about as long. Judged over the last half second
    the link is busy: the waits do not step down, and a window without waits steps up."""
    ctl = _ctl(3)
    ctl.on_written(ctl.current, CHUNK, 0.0, 0.3, 0.3)  # the buffers filled: the link is busy
    for _ in range(3):
        for _ in range(WINDOW):  # buffer has room: the writer waits for the compressor
            ctl.on_written(ctl.current, CHUNK, 0.004, 0.0005, 0.0045)
        ctl.on_written(ctl.current, CHUNK, 0.0, 0.3, 0.3)  # buffer full: the link drains it
    assert ctl.current == 1  # no step down: the buffers still held plenty for the link
    for _ in range(2):  # (the first window still holds some waits)
        _window(ctl, waited=0.0, writing=0.0005, elapsed=0.002)
    assert ctl.current == 3


def test_without_a_busy_link_waiting_for_the_compressor_steps_down_at_once() -> None:
    ctl = _ctl(3)
    _window(ctl, waited=0.004, writing=0.0005, elapsed=0.0045)
    assert ctl.current == FAST_LEVEL

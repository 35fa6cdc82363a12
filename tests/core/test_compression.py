"""T14/T15: bounded, strict per-chunk zstd."""

from __future__ import annotations

import os
import tracemalloc

import pytest
import zstandard

from sp2p.errors import RemoteProtocolError
from sp2p.proto.compression import (
    ChunkCompressor,
    ChunkDecompressor,
    chunk_limit,
    compress_bound,
    stored_frame,
)
from sp2p.proto.constants import FRAME_OVERHEAD, MAX_CHUNK_SIZE


@pytest.mark.parametrize("level", range(1, 10))
def test_round_trip_every_level(level: int) -> None:
    data = b"compressible text " * 10000
    frame = ChunkCompressor(level).compress(data[:MAX_CHUNK_SIZE])
    assert len(frame) < MAX_CHUNK_SIZE // 10
    assert ChunkDecompressor().decompress(frame) == data[:MAX_CHUNK_SIZE]


def test_incompressible_hint_round_trips() -> None:
    data = os.urandom(MAX_CHUNK_SIZE)
    frame = ChunkCompressor(9).compress(data, incompressible_hint=True)
    assert len(frame) <= len(data) + 64
    assert ChunkDecompressor().decompress(frame) == data


def test_level_out_of_range() -> None:
    with pytest.raises(ValueError):
        ChunkCompressor(0)


def test_t14_bomb_with_declared_size_is_refused_before_decoding() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(64 * 1024 * 1024))
    assert len(bomb) < 32 * 1024
    tracemalloc.start()
    with pytest.raises(RemoteProtocolError, match="exceeds maximum"):
        ChunkDecompressor().decompress(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_t14_bomb_without_declared_size_is_bounded() -> None:
    cctx = zstandard.ZstdCompressor(level=19, write_content_size=False)
    bomb = cctx.compress(bytes(64 * 1024 * 1024))
    tracemalloc.start()
    with pytest.raises(RemoteProtocolError):
        ChunkDecompressor().decompress(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_t14_lying_content_size() -> None:
    real = zstandard.ZstdCompressor(level=3).compress(b"A" * 100_000)
    # patch the single-segment 4-byte? content-size field: rebuild with a smaller declared size
    params = zstandard.get_frame_parameters(real)
    assert params.content_size == 100_000
    small = zstandard.ZstdCompressor(level=3).compress(b"A" * 10)
    lying = small[:6] + real[6:]  # header of the small frame, blocks of the big one
    with pytest.raises(RemoteProtocolError):
        ChunkDecompressor().decompress(lying)


def test_t14_huge_window_is_rejected() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(19, window_log=27, write_content_size=False)
    cobj = zstandard.ZstdCompressor(compression_params=params).compressobj()  # size unknown: window kept
    frame = cobj.compress(os.urandom(1024) * 200) + cobj.flush()
    assert zstandard.get_frame_parameters(frame).window_size > 8 * 1024 * 1024
    with pytest.raises(RemoteProtocolError):
        ChunkDecompressor().decompress(frame)


def test_t14_skippable_frame_is_rejected() -> None:
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"abcd"
    with pytest.raises(RemoteProtocolError, match="not a zstd frame"):
        ChunkDecompressor().decompress(skippable)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f + b"garbage",
        lambda f: f + f,
        lambda f: f[:-3],
        lambda f: b"",
    ],
    ids=["trailing", "concatenated", "truncated", "empty"],
)
def test_t15_framing_errors(mangle: object) -> None:
    frame = ChunkCompressor(3).compress(b"hello world " * 100)
    with pytest.raises(RemoteProtocolError):
        ChunkDecompressor().decompress(mangle(frame))  # type: ignore[operator]


def test_compress_bound_is_libzstds() -> None:
    # ZSTD_COMPRESSBOUND: size + size/256, plus a margin below 128 KiB
    assert compress_bound(0) == 64
    assert compress_bound(1000) == 1000 + 3 + (131072 - 1000) // 2048
    assert compress_bound(262_144) == 262_144 + 1024


@pytest.mark.parametrize("limit", [262_144, 65_536, 16_384, 1_200])
def test_chunk_limit_fits_a_frame_in_one_message(limit: int) -> None:
    plain = chunk_limit(limit, compressed=False)
    assert plain + FRAME_OVERHEAD == limit
    packed = chunk_limit(limit, compressed=True)
    assert compress_bound(packed) + FRAME_OVERHEAD <= limit < compress_bound(packed + 1) + FRAME_OVERHEAD
    # incompressible input, every way the sender may encode it, still fits
    data = os.urandom(packed)
    bodies = [stored_frame(data)] + [ChunkCompressor(level).compress(data) for level in (1, 3, 9)]
    assert max(len(body) for body in bodies) + FRAME_OVERHEAD <= limit


def test_chunk_limit_without_messages_is_the_full_chunk() -> None:
    assert chunk_limit(None, compressed=True) == chunk_limit(None, compressed=False) == MAX_CHUNK_SIZE
    assert chunk_limit(1 << 30, compressed=False) == MAX_CHUNK_SIZE  # Firefox announces ~1 GiB

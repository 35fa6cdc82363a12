"""ReceiveBuffer, the one buffer behind FrameDecoder and TarParser: any split of the input
and any sequence of reads give back the same bytes in the same order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.proto.receivebuffer import SMALL_PIECE, ReceiveBuffer

#: piece sizes on both sides of the small/large threshold
_SIZES = st.integers(min_value=0, max_value=3 * SMALL_PIECE)
#: one read: (exact?, how many bytes)
_READS = st.tuples(st.booleans(), st.integers(min_value=0, max_value=4 * SMALL_PIECE))


@settings(max_examples=60, deadline=None)
@given(st.lists(_SIZES, max_size=8), st.lists(_READS, max_size=30))
def test_any_chunking_and_any_reads_give_the_stream_back(
    sizes: list[int], reads: list[tuple[bool, int]]
) -> None:
    stream = bytes(i % 251 for i in range(sum(sizes)))
    buf = ReceiveBuffer()
    fed = got = 0
    out = bytearray()
    pieces = iter(sizes)
    for exact, n in reads:
        size = next(pieces, None)
        if size is not None:
            buf += stream[fed : fed + size]
            fed += size
        assert len(buf) == fed - got
        assert bool(buf) == (fed > got)
        head = bytes(buf.peek(4)[:4])
        assert head == stream[got : min(got + 4, fed)]
        if exact:
            n = min(n, len(buf))
            piece = buf.extract(n)
            assert len(piece) == n
        else:
            piece = buf.extract_at_most(n)
            assert len(piece) <= n
            assert (len(piece) > 0) == (n > 0 and fed > got)
        out += piece
        got += len(piece)
    for size in pieces:
        buf += stream[fed : fed + size]
        fed += size
    out += buf.extract(len(buf))
    assert bytes(out) == stream
    assert not buf


def test_a_frame_inside_one_large_piece_is_a_view_not_a_copy() -> None:
    big = bytes(range(256)) * (SMALL_PIECE // 128)
    buf = ReceiveBuffer()
    buf += big
    first = buf.extract(100)
    assert first.obj is big
    assert buf.extract_at_most(10**9).obj is big
    assert not buf


def test_extract_beyond_what_is_buffered_is_a_bug() -> None:
    buf = ReceiveBuffer()
    buf += b"abc"
    with pytest.raises(ValueError, match="3 bytes buffered"):
        buf.extract(4)

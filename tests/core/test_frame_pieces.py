"""FrameDecoder with the pieces a socket really returns: large ones handed out as views,
small ones gathered in one buffer, any mix of the two in any order."""

from __future__ import annotations

import os
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.proto.constants import MsgType
from sp2p.proto.frames import SMALL_PIECE, FrameDecoder, FrameOpener, FrameSealer, SealedFrame

KEY = bytes(range(32))


def _decode(stream: bytes, cuts: list[int]) -> list[bytes]:
    dec, opener = FrameDecoder(), FrameOpener(KEY)
    bodies: list[bytes] = []
    pos = 0
    for cut in sorted({min(c, len(stream)) for c in cuts}) + [len(stream)]:
        if cut > pos:
            dec.receive_data(stream[pos:cut])
        pos = cut
        while isinstance(f := dec.next_frame(), SealedFrame):
            bodies.append(opener.open(f).body)
    assert dec.buffered == 0
    return bodies


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3 * SMALL_PIECE), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=20 * SMALL_PIECE), max_size=25),
)
def test_large_and_small_pieces_in_any_mix(sizes: list[int], cuts: list[int]) -> None:
    bodies = [os.urandom(n) for n in sizes]
    sealer = FrameSealer(KEY)
    stream = b"".join(sealer.seal(MsgType.DATA, b) for b in bodies)
    assert _decode(stream, cuts) == bodies


def test_a_dribbling_peer_costs_bytes_not_objects() -> None:
    body = os.urandom(60_000)
    wire = FrameSealer(KEY).seal(MsgType.DATA, body)
    dec = FrameDecoder()
    tracemalloc.start()
    for i in range(len(wire) - 1):
        dec.receive_data(wire[i : i + 1])
        assert not isinstance(dec.next_frame(), SealedFrame)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * len(wire)  # one object per byte would be ~200 bytes each
    dec.receive_data(wire[-1:])
    frame = dec.next_frame()
    assert isinstance(frame, SealedFrame)
    assert FrameOpener(KEY).open(frame).body == body

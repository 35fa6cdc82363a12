"""Frame codec and AEAD: properties (hypothesis) and the C-cases of security-cases.md."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.errors import IntegrityError, RemoteProtocolError, TransferError
from sp2p.proto.constants import MAX_CHUNK_SIZE, MAX_FRAME_SIZE, NONCE_LIMIT, MsgType
from sp2p.proto.frames import EOF, NEED_DATA, FrameDecoder, FrameOpener, FrameSealer, SealedFrame

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
#: largest body that fits one frame: L = 9 + body + 16 <= 524288
MAX_BODY = MAX_FRAME_SIZE - 9 - 16


def _stream(bodies: list[bytes], key: bytes = KEY) -> bytes:
    sealer = FrameSealer(key)
    return b"".join(sealer.seal(MsgType.DATA, b) for b in bodies)


def _decode_all(data: bytes, cuts: list[int]) -> list[SealedFrame]:
    dec = FrameDecoder()
    frames: list[SealedFrame] = []
    pos = 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        if cut > pos:  # b"" would mean EOF
            dec.receive_data(data[pos:cut])
        pos = cut
        while isinstance(f := dec.next_frame(), SealedFrame):
            frames.append(f)
    dec.receive_data(b"")
    assert dec.next_frame() is EOF
    return frames


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=600), min_size=0, max_size=6),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_any_chunking_decodes_to_the_same_frames(bodies: list[bytes], cuts: list[int]) -> None:
    data = _stream(bodies)
    whole = _decode_all(data, [])
    assert _decode_all(data, cuts) == whole
    byte_by_byte = _decode_all(data, list(range(len(data))))
    assert byte_by_byte == whole
    opener = FrameOpener(KEY)
    assert [opener.open(f).body for f in whole] == bodies


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_raises_only_protocol_errors(garbage: bytes) -> None:
    dec = FrameDecoder()
    opener = FrameOpener(KEY)
    try:
        dec.receive_data(garbage)
        dec.receive_data(b"")
        while isinstance(f := dec.next_frame(), SealedFrame):
            opener.open(f)
    except (RemoteProtocolError, IntegrityError):
        pass


@pytest.mark.parametrize("size", [0, 1, MAX_CHUNK_SIZE - 1, MAX_CHUNK_SIZE, MAX_BODY])
def test_seal_open_round_trip(size: int) -> None:
    body = os.urandom(size)
    sealed = FrameSealer(KEY).seal(MsgType.DATA, body)
    dec = FrameDecoder()
    dec.receive_data(sealed)
    frame = dec.next_frame()
    assert isinstance(frame, SealedFrame)
    assert FrameOpener(KEY).open(frame).body == body


def test_one_byte_over_the_maximum_is_refused() -> None:
    with pytest.raises(TransferError, match="too large"):
        FrameSealer(KEY).seal(MsgType.DATA, bytes(MAX_BODY + 1))


def test_c4_every_bit_flip_is_rejected() -> None:
    wire = FrameSealer(KEY).seal(MsgType.DATA, b"secret payload")
    for offset in range(len(wire)):
        for bit in (0x01, 0x80):
            tampered = bytearray(wire)
            tampered[offset] ^= bit
            dec = FrameDecoder()
            dec.receive_data(bytes(tampered))
            dec.receive_data(b"")
            with pytest.raises((IntegrityError, RemoteProtocolError)):
                f = dec.next_frame()
                assert isinstance(f, SealedFrame)
                FrameOpener(KEY).open(f)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_c4_random_flips(pos: int, mask: int) -> None:
    wire = bytearray(FrameSealer(KEY).seal(MsgType.DATA, os.urandom(64)))
    wire[pos % len(wire)] ^= mask
    dec = FrameDecoder()
    dec.receive_data(bytes(wire))
    dec.receive_data(b"")
    with pytest.raises((IntegrityError, RemoteProtocolError)):
        f = dec.next_frame()
        assert isinstance(f, SealedFrame)
        FrameOpener(KEY).open(f)


@pytest.mark.parametrize("new_type", [MsgType.DONE, MsgType.METADATA, MsgType.ERROR, MsgType.CANCEL])
def test_c5_type_relabel_fails_aad(new_type: MsgType) -> None:
    f = _decode_all(FrameSealer(KEY).seal(MsgType.DATA, b"x" * 10), [])[0]
    with pytest.raises(IntegrityError):
        FrameOpener(KEY).open(SealedFrame(new_type, f.seq, f.ciphertext))


def test_c6_truncation_mid_frame() -> None:
    wire = _stream([b"a" * 100, b"b" * 100])
    for cut in (2, 13, len(wire) - 1):
        dec = FrameDecoder()
        dec.receive_data(wire[:cut])
        dec.receive_data(b"")
        with pytest.raises(RemoteProtocolError, match="middle of a frame"):
            while dec.next_frame() is not EOF:
                pass


def test_c7_reorder_and_drop() -> None:
    frames = _decode_all(_stream([b"0", b"1", b"2"]), [])
    with pytest.raises(IntegrityError, match="sequence mismatch"):
        FrameOpener(KEY).open(frames[1])
    opener = FrameOpener(KEY)
    opener.open(frames[0])
    with pytest.raises(IntegrityError, match="sequence mismatch"):
        opener.open(frames[2])


def test_c8_replay_in_same_session() -> None:
    frames = _decode_all(_stream([b"0", b"1"]), [])
    opener = FrameOpener(KEY)
    opener.open(frames[0])
    with pytest.raises(IntegrityError):
        opener.open(frames[0])


def test_c9_direction_and_key_confusion() -> None:
    f = _decode_all(_stream([b"hello"], key=OTHER), [])[0]
    with pytest.raises(IntegrityError):
        FrameOpener(KEY).open(f)


def test_c10_nonce_exhaustion_on_write_and_read() -> None:
    sealer = FrameSealer(KEY)
    sealer.next_seq = NONCE_LIMIT - 1
    last = sealer.seal(MsgType.HEARTBEAT, b"")
    with pytest.raises(TransferError, match="exhausted"):
        sealer.seal(MsgType.HEARTBEAT, b"")
    assert sealer.next_seq == NONCE_LIMIT  # never wraps
    opener = FrameOpener(KEY)
    opener.expected_seq = NONCE_LIMIT - 1
    opener.open(_decode_all(last, [])[0])
    with pytest.raises(IntegrityError, match="exhausted"):
        opener.open(_decode_all(last, [])[0])


def test_c10_no_nonce_repeats_across_a_session() -> None:
    sealer = FrameSealer(KEY)
    seqs = [sealer.reserve() for _ in range(1000)]
    assert len(set(seqs)) == 1000
    assert seqs == sorted(seqs)


def test_cancel_may_skip_reserved_sequence_numbers() -> None:
    sealer = FrameSealer(KEY)
    sealer.next_seq = 5
    cancel = _decode_all(sealer.seal(MsgType.CANCEL, b"\x02"), [])[0]
    opener = FrameOpener(KEY)
    opener.expected_seq = 2
    assert opener.open(cancel).seq == 5
    assert opener.expected_seq == 6
    # ...but nothing else may, and Cancel may never go backwards
    data = _decode_all(FrameSealer(KEY).seal_at(9, MsgType.DATA, b""), [])[0]
    with pytest.raises(IntegrityError):
        opener.open(data)
    back = _decode_all(FrameSealer(KEY).seal_at(3, MsgType.CANCEL, b"\x01"), [])[0]
    with pytest.raises(IntegrityError):
        opener.open(back)


@pytest.mark.parametrize("length", [0, 8, MAX_FRAME_SIZE + 1, 2**32 - 1])
def test_c15_length_field_abuse_rejected_before_allocation(length: int) -> None:
    dec = FrameDecoder()
    dec.receive_data(length.to_bytes(4, "big") + b"\x02")
    with pytest.raises(RemoteProtocolError, match="too (small|large)"):
        dec.next_frame()
    assert dec.buffered < 16  # nothing of the declared size was buffered


def test_short_but_wellformed_lengths_fail_authentication() -> None:
    for length in range(9, 25):
        dec = FrameDecoder()
        dec.receive_data(length.to_bytes(4, "big") + bytes(length))
        f = dec.next_frame()
        assert isinstance(f, SealedFrame)
        with pytest.raises(IntegrityError):
            FrameOpener(KEY).open(f)


def test_decoder_waits_for_more_data() -> None:
    dec = FrameDecoder()
    assert dec.next_frame() is NEED_DATA
    dec.receive_data(b"\x00\x00")
    assert dec.next_frame() is NEED_DATA

"""server/wsframe.py, the server's frame codec, against an independent implementation:
client frames built by the `websockets` library (masked, fragmented, split at any byte)
must come out as the same messages; our server frames must parse back in `websockets`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from server import wsframe
from server.wsframe import Control, FrameReader, Message, ProtocolError

LIMIT = 65536


def masked(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame as a browser would send it (random mask)."""
    frame = Frame(opcode, data, fin=fin)
    return frame.serialize(mask=True)


def raw(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame `websockets` would refuse to build: all-zero mask, any opcode and length."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


def feed_in_pieces(reader: FrameReader, wire: bytes, cuts: list[int]) -> list[wsframe.Event]:
    events: list[wsframe.Event] = []
    start = 0
    for cut in sorted({c % (len(wire) + 1) for c in cuts}) + [len(wire)]:
        events += reader.feed(wire[start:cut])
        start = cut
    return events


messages = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda t: Message(t.encode(), False)),
        st.binary(max_size=300).map(lambda b: Message(b, True)),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.integers(min_value=0, max_value=5000), max_size=8), st.integers(1, 4))
def test_messages_survive_any_fragmentation_and_any_read_boundaries(
    sent: list[Message], cuts: list[int], parts: int
) -> None:
    wire = b""
    for message in sent:
        data = message.data
        step = max(1, len(data) // parts)
        chunks = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        for i, chunk in enumerate(chunks):
            opcode = (Opcode.BINARY if message.binary else Opcode.TEXT) if i == 0 else Opcode.CONT
            wire += masked(opcode, chunk, fin=i == len(chunks) - 1)
        wire += masked(Opcode.PING, b"p")  # control frames may come between messages
    got = feed_in_pieces(FrameReader(LIMIT), wire, cuts)
    assert [e for e in got if isinstance(e, Message)] == sent
    assert [e for e in got if isinstance(e, Control)] == [Control(wsframe.OP_PING, b"p")] * len(sent)


def test_control_frames_between_fragments_and_close_body() -> None:
    reader = FrameReader(LIMIT)
    wire = masked(Opcode.TEXT, b"he", fin=False) + masked(Opcode.PONG, b"") + masked(Opcode.CONT, b"llo")
    wire += masked(Opcode.CLOSE, (1001).to_bytes(2, "big") + b"bye")
    events = reader.feed(wire)
    assert events == [
        Control(wsframe.OP_PONG, b""),
        Message(b"hello", False),
        Control(wsframe.OP_CLOSE, b"\x03\xe9bye"),
    ]
    assert wsframe.close_code(events[2].payload) == 1001  # type: ignore[union-attr]
    assert wsframe.close_code(b"") is None


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (Frame(Opcode.TEXT, b"x").serialize(mask=False), 1002),  # unmasked client frame
        (masked(Opcode.CONT, b"x"), 1002),  # continuation without a message
        (masked(Opcode.TEXT, b"a", fin=False) + masked(Opcode.TEXT, b"b"), 1002),
        (raw(0x9, b"x" * 126), 1002),  # control frames carry at most 125 bytes
        (raw(0x9, b"x", fin=False), 1002),
        (raw(0x8, b"\x03"), 1002),
        (bytes([0x83, 0x80, 0, 0, 0, 0]), 1002),  # reserved data opcode
        (bytes([0x8B, 0x80, 0, 0, 0, 0]), 1002),  # reserved control opcode
        (bytes([0xC1, 0x80, 0, 0, 0, 0]), 1002),  # RSV1: no extension was negotiated
        (masked(Opcode.TEXT, b"\xff\xfe"), 1007),  # text must be UTF-8
        (masked(Opcode.TEXT, b"x" * (LIMIT + 1)), 1009),
        (masked(Opcode.TEXT, b"x" * LIMIT, fin=False) + masked(Opcode.CONT, b"y"), 1009),
    ],
    # named, not shown: a random mask would give each pytest-xdist worker other test ids
    ids=["unmasked", "lone-continuation", "text-in-text", "long-control", "fragmented-control",
         "one-byte-close", "reserved-data-opcode", "reserved-control-opcode", "rsv1", "not-utf8",
         "oversize", "oversize-fragments"],
)
def test_violations_close_with_the_right_code(wire: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        FrameReader(LIMIT).feed(wire)
    assert info.value.code == code


def test_oversize_is_refused_on_the_header_before_any_payload() -> None:
    """S4: a header claiming 2^63 bytes is refused from its first 10 bytes."""
    header = bytes([0x81, 0x80 | 127]) + ((1 << 63) - 1).to_bytes(8, "big")
    with pytest.raises(ProtocolError) as info:
        FrameReader(LIMIT).feed(header)
    assert info.value.code == 1009


def test_exactly_the_limit_passes() -> None:
    data = "é".encode() * (LIMIT // 2)
    assert FrameReader(LIMIT).feed(masked(Opcode.TEXT, data)) == [Message(data, False)]


def _parse_server_frames(wire: bytes) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(wire)
    frames = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=False)
        try:
            while True:
                next(gen)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_server_frames_parse_in_websockets(size: int) -> None:
    text = "x" * size
    (frame,) = _parse_server_frames(wsframe.text_frame(text))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == text.encode()
    (close,) = _parse_server_frames(wsframe.close_frame(1009, "Message is too big"))
    assert close.opcode is Opcode.CLOSE and close.data == b"\x03\xf1Message is too big"

"""The pure rules of parallel TCP (client.md §3.11)."""

from __future__ import annotations

import pytest

from sp2p.proto.parallel import (
    agreed_streams,
    link_rtt,
    pack_data_index,
    parse_secondary_hello,
    secondary_hello,
    streams_for_rtt,
    unpack_data_index,
)

TOKEN = bytes(range(16))


@pytest.mark.parametrize(
    ("rtt_ms", "streams"),
    [(0.1, 1), (4.99, 1), (5.0, 2), (19.9, 2), (20, 3), (49.9, 3), (50, 4), (99.9, 4), (100, 6), (900, 6)],
)
def test_stream_count_follows_the_rtt_steps(rtt_ms: float, streams: int) -> None:
    assert streams_for_rtt(rtt_ms / 1000) == streams


def test_agreement_is_the_smaller_offer_and_never_zero() -> None:
    assert agreed_streams(6, 3) == agreed_streams(3, 6) == 3
    assert agreed_streams(1, 6) == 1
    assert agreed_streams(0, 6) == 1


def test_rtt_is_the_quickest_probe() -> None:
    assert link_rtt([0.030, 0.012, 0.050]) == 0.012


def test_secondary_hello_round_trip_and_refusals() -> None:
    hello = secondary_hello(TOKEN, 2)
    assert hello == b"T" + TOKEN + b"\x02" and len(hello) == 18
    assert parse_secondary_hello(hello, TOKEN, 3) == 2
    assert parse_secondary_hello(hello, TOKEN, 1) is None  # index above the agreed count
    assert parse_secondary_hello(b"S" + hello[1:], TOKEN, 3) is None  # primary magic
    assert parse_secondary_hello(hello[:-1], TOKEN, 3) is None
    assert parse_secondary_hello(hello, bytes(16), 3) is None  # wrong token
    assert parse_secondary_hello(b"T" + TOKEN + b"\x00", TOKEN, 3) is None  # 0 is the primary
    with pytest.raises(ValueError):
        secondary_hello(TOKEN, 0)


def test_data_index_prefix_is_u64_big_endian() -> None:
    assert pack_data_index(258) == b"\x00" * 6 + b"\x01\x02"
    assert unpack_data_index(pack_data_index(2**40 + 5) + b"chunk") == 2**40 + 5

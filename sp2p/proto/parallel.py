"""Parallel TCP of protocol v2 (client.md §3.11): the pure rules, no I/O.

The negotiation runs on the primary encrypted stream right after key confirmation;
secondary TCP connections then authenticate with an 18-byte hello, and Data frames
carry a global index g that says which stream (g mod N) carries them and where
they belong in the reassembled order.
"""

from __future__ import annotations

import struct
from typing import Final

from sp2p.proto.constants import MAX_PARALLEL_STREAMS, PREFER_TCP_THRESHOLD, SECONDARY_MAGIC
from sp2p.proto.sha import compare_digest

#: below this size (and without a forced count) the sender does not probe at all
PARALLEL_THRESHOLD: Final = PREFER_TCP_THRESHOLD
RTT_PROBES: Final = 3
#: each negotiation phase (probes, secondary connections, the final Ready) has this long
PHASE_DEADLINE: Final = 5.0
#: the receiver offers this many streams unless forced
RECEIVER_DEFAULT_STREAMS: Final = MAX_PARALLEL_STREAMS
#: Data frames buffered out of order at most; Go allows 4096 (~1 GiB, W22), 256 is 64 MiB
REASSEMBLY_WINDOW: Final = 256

_INDEX: Final = struct.Struct(">Q")
DATA_INDEX_BYTES: Final = _INDEX.size
SECONDARY_HELLO_BYTES: Final = 1 + 16 + 1
SECONDARY_ACK: Final = bytes([SECONDARY_MAGIC])

_RTT_STEPS: Final = ((0.005, 1), (0.020, 2), (0.050, 3), (0.100, 4))


def streams_for_rtt(rtt: float) -> int:
    """Stream count the sender asks for on a link with this round-trip time (seconds)."""
    for limit, count in _RTT_STEPS:
        if rtt < limit:
            return count
    return MAX_PARALLEL_STREAMS


def link_rtt(samples: list[float]) -> float:
    """The smallest probe: Go takes the median, but a probe answered by a busy peer process
    measures its scheduling delay, not the link, and would ask for streams a LAN never needs."""
    return min(samples)


def agreed_streams(own: int, peer: int) -> int:
    """Both sides use min(own, peer); 1 (or less) means a single stream."""
    return max(1, min(own, peer))


def secondary_hello(token: bytes, index: int) -> bytes:
    if not 1 <= index < MAX_PARALLEL_STREAMS:
        raise ValueError(f"secondary stream index {index} out of range")
    return bytes([SECONDARY_MAGIC]) + token + bytes([index])


def parse_secondary_hello(data: bytes, token: bytes, count: int) -> int | None:
    """Index 1..count of a valid hello, None for anything else (closed by the acceptor)."""
    if len(data) != SECONDARY_HELLO_BYTES or data[0] != SECONDARY_MAGIC:
        return None
    if not compare_digest(data[1:17], token):
        return None
    index = data[17]
    return index if 1 <= index <= count else None


def pack_data_index(g: int) -> bytes:
    return _INDEX.pack(g)


def unpack_data_index(body: bytes) -> int:
    (g,) = _INDEX.unpack_from(body, 0)
    return int(g)

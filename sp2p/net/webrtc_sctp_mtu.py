"""M1-M3 of docs/webrtc-tuning.md: larger SCTP packets to our CLIs and browsers, after a probe.

aiortc's cost is per packet, and its packets carry 1160 bytes of data. Between two of our
CLIs whose path carries more, larger packets cut the per-packet work: JUMBO_PACKET bytes
(about sevenfold) where the path carries them (loopback, a LAN with jumbo frames), and
ETHERNET_PACKET bytes (a fifth fewer packets) on the common 1500-byte path, the 70 ms link
of bench_link and most of the Internet. Go peers keep 1200-byte packets (browsers: M3 below):

  1. Each of our associations announces JUMBO_PARAM in its INIT / INIT-ACK: an optional
     parameter of the "skip silently" class (RFC 9260 3.2.1, top bits 10), which pion,
     usrsctp and older sp2p ignore.
  2. A sender whose peer announced it, and whose DTLS record layer is ours (webrtc_dtls:
     OpenSSL's path cuts records at 1500 bytes), sends one HEARTBEAT padded to each of
     PROBE_PACKETS at once (RFC 8899's probe packets). The ICE sockets set don't-fragment
     (webrtc_ice), so a path with a smaller MTU drops a probe rather than fragmenting it.
  3. Only the peer's HEARTBEAT-ACK, the same size back, switches this association's DATA
     chunks to that packet's size (never down: the larger answer wins whatever the order);
     no answer within PROBE_TIMEOUT keeps 1160.

M3: a browser announces nothing, and Chromium never sends a packet above its own ~1200-byte
MTU, so it does not answer step 2's probes (it drops its large HEARTBEAT-ACK). A browser peer
is probed as RFC 8899 section 6.2.1.2 does: a HEARTBEAT whose info names the size, bundled
with a PAD chunk (RFC 4820; type 0x84, which receivers skip silently) that fills the packet to
each of BROWSER_PROBE_PACKETS. The peer only reads the HEARTBEAT if the whole packet arrived
(checksum), and its small HEARTBEAT-ACK names the size that got through (probe_browser).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

from sp2p.net import webrtc_sctp_rtt

#: the optional INIT parameter type that says "sp2p: I take packets up to JUMBO_PACKET"
JUMBO_PARAM = 0xBFA7
#: SCTP packet size probed for and used once the probe came back (a UDP payload of
#: JUMBO_PACKET + 37 bytes of DTLS)
JUMBO_PACKET = 8192
#: M2: the largest SCTP packet whose datagram fits a 1500-byte MTU over IPv6 too
#: (1500 - 40 IPv6 - 8 UDP - 37 DTLS = 1415, down to a multiple of 4)
ETHERNET_PACKET = 1412
#: the probes sent together, largest first
PROBE_PACKETS = (JUMBO_PACKET, ETHERNET_PACKET)
#: M3: the largest SCTP packet Chromium takes: its DTLS transport reads each record into a
#: 2048-byte buffer (2048-byte packets arrive, 2052-byte ones are lost; Chromium 156)
BROWSER_PACKET = 2048
#: the probes sent to a browser, largest first
BROWSER_PROBE_PACKETS = (BROWSER_PACKET, ETHERNET_PACKET)
#: RFC 4820's PAD chunk: its top bits 10 make every receiver skip it without a report
PAD_CHUNK = 0x84


def data_size(packet: int) -> int:
    """User data per DATA chunk in SCTP packets of `packet` bytes (12-byte common header,
    16-byte chunk header; chunks are padded to 4 bytes)."""
    return (packet - 12 - 16) // 4 * 4


#: user data per DATA chunk in JUMBO_PACKET packets
JUMBO_DATA = data_size(JUMBO_PACKET)
#: how long the sender waits for the probe's answer before keeping small packets
PROBE_TIMEOUT = 2.0
_HEARTBEAT_INFO = 1
#: set to 1 to keep 1200-byte packets between our CLIs too (comparisons)
DISABLE_ENV = "SP2P_WEBRTC_NO_JUMBO"

#: (class name, function) this module replaces; tests/net/test_webrtc_patches.py fingerprints each
PATCHED = (
    ("RTCSctpTransport", "_get_extensions"),
    ("RTCSctpTransport", "_set_extensions"),
    ("RTCSctpTransport", "_send"),
)


def chunk_size(sctp: Any, default: int) -> int:
    """User data per DATA chunk on this association."""
    return int(sctp.__dict__.get("_sp2p_chunk_size", default))


def probe_browser(sctp: Any) -> None:
    """M3: probe a browser peer with padded HEARTBEATs of BROWSER_PROBE_PACKETS bytes (call
    before the association starts)."""
    if os.environ.get(DISABLE_ENV, "") in ("", "0"):
        sctp._sp2p_probe = "pending"
        sctp._sp2p_probe_browser = True


def probes_browser(sctp: Any) -> bool:
    """M3: this association probes a browser: padded probes, answers that only name the size."""
    return "_sp2p_probe_browser" in sctp.__dict__


def probe_packets(sctp: Any) -> tuple[int, ...]:
    """The packet sizes this association probes, largest first."""
    return BROWSER_PROBE_PACKETS if probes_browser(sctp) else PROBE_PACKETS


class Padded:
    """M3's probe: a HEARTBEAT and a PAD chunk making the SCTP packet `packet` bytes long
    (aiortc's _send_chunk puts bytes(chunk) after the common header)."""

    def __init__(self, heartbeat: Any, packet: int) -> None:
        self.heartbeat = heartbeat
        self.packet = packet

    def __bytes__(self) -> bytes:
        first = bytes(self.heartbeat)
        pad = self.packet - 12 - len(first)  # the PAD chunk, its 4-byte header included
        return first + bytes((PAD_CHUNK, 0)) + pad.to_bytes(2, "big") + bytes(pad - 4)

    def __repr__(self) -> str:
        return f"Padded(HeartbeatChunk, {self.packet})"


def install(mod: Any, *, can_send_jumbo: Any) -> None:
    """`can_send_jumbo(dtls_transport)` tells whether our record layer carries the sending."""
    cls = mod.RTCSctpTransport
    heartbeat_cls = mod.HeartbeatChunk
    heartbeat_ack_type = mod.HeartbeatAckChunk.type
    data_chunk_cls = mod.DataChunk
    first_frag, last_frag = mod.SCTP_DATA_FIRST_FRAG, mod.SCTP_DATA_LAST_FRAG
    unordered = mod.SCTP_DATA_UNORDERED
    default_size = mod.USERDATA_MAX_LENGTH
    established = cls.State.ESTABLISHED
    uint16_add, tsn_plus_one = mod.uint16_add, mod.tsn_plus_one
    orig_get = cls._get_extensions
    orig_set = cls._set_extensions

    def get_extensions(self: Any, params: list[tuple[int, bytes]]) -> None:
        orig_get(self, params)
        if any(k == JUMBO_PARAM for k, _ in params):
            self._sp2p_probe = "pending"

    def set_extensions(self: Any, params: list[tuple[int, bytes]]) -> None:
        orig_set(self, params)
        if os.environ.get(DISABLE_ENV, "") in ("", "0"):
            params.append((JUMBO_PARAM, JUMBO_PACKET.to_bytes(4, "big")))

    def maybe_probe(self: Any) -> None:
        """Called from transmit: start the probes once the association is up."""
        if self._association_state != established or not can_send_jumbo(self.transport):
            return
        self._sp2p_probe = "sent"
        token = os.urandom(8)
        self._sp2p_probe_token = token
        self._receive_chunk = lambda chunk: receive_chunk(self, chunk)  # until answered
        padded = probes_browser(self)
        for packet in probe_packets(self):
            probe = heartbeat_cls()
            info = token + packet.to_bytes(4, "big")
            # chunk header 4 + param header 4 + info; the packet adds the 12-byte common header
            probe.params = [(_HEARTBEAT_INFO, info if padded else info + bytes(packet - 20 - len(info)))]
            asyncio.ensure_future(self._send_chunk(Padded(probe, packet) if padded else probe))
        self._sp2p_probe_sent_at = time.monotonic()
        self._loop.call_later(PROBE_TIMEOUT, probe_expired, self)

    async def receive_chunk(self: Any, chunk: Any) -> None:
        if chunk.type == heartbeat_ack_type and self.__dict__.get("_sp2p_probe") == "sent":
            info = dict(chunk.params).get(_HEARTBEAT_INFO, b"")
            packet = int.from_bytes(info[8:12], "big")
            packets = probe_packets(self)
            whole = probes_browser(self) or len(info) == packet - 20  # M1: the answer is full size
            if info[:8] == self._sp2p_probe_token and packet in packets and whole:
                # answered at once, like the handshake: a round-trip sample for H1
                webrtc_sctp_rtt.record(self, time.monotonic() - self._sp2p_probe_sent_at)
                size = data_size(packet)
                if size > chunk_size(self, default_size):  # answers may come in any order
                    self._sp2p_chunk_size = size
                if packet == packets[0]:  # nothing larger to wait for
                    finish(self, "done")
                return
        await cls._receive_chunk(self, chunk)

    def finish(self: Any, state: str) -> None:
        self._sp2p_probe = state
        self.__dict__.pop("_receive_chunk", None)

    def probe_expired(self: Any) -> None:
        if self.__dict__.get("_sp2p_probe") == "sent":
            finish(self, "done" if "_sp2p_chunk_size" in self.__dict__ else "failed")

    async def send(
        self: Any,
        stream_id: int,
        pp_id: int,
        user_data: bytes,
        expiry: float | None = None,
        max_retransmits: int | None = None,
        ordered: bool = True,
    ) -> None:
        # aiortc 1.16 _send with the chunk size per association (sp2p M1)
        if self.__dict__.get("_sp2p_probe") == "pending":  # sp2p M1
            maybe_probe(self)
        size = self.__dict__.get("_sp2p_chunk_size", default_size)  # sp2p M1
        stream_seq = self._outbound_stream_seq.get(stream_id, 0) if ordered else 0

        fragments = math.ceil(len(user_data) / size)
        pos = 0
        for fragment in range(0, fragments):
            chunk = data_chunk_cls()
            chunk.flags = 0
            if not ordered:
                chunk.flags = unordered
            if fragment == 0:
                chunk.flags |= first_frag
            if fragment == fragments - 1:
                chunk.flags |= last_frag
            chunk.tsn = self._local_tsn
            chunk.stream_id = stream_id
            chunk.stream_seq = stream_seq
            chunk.protocol = pp_id
            chunk.user_data = user_data[pos : pos + size]

            chunk._abandoned = False
            chunk._acked = False
            chunk._book_size = len(chunk.user_data)
            chunk._expiry = expiry
            chunk._in_flight = False
            chunk._max_retransmits = max_retransmits
            chunk._misses = 0
            chunk._retransmit = False
            chunk._sent_count = 0
            chunk._sent_time = None

            pos += size
            self._local_tsn = tsn_plus_one(self._local_tsn)
            self._outbound_queue.append(chunk)

        if ordered:
            self._outbound_stream_seq[stream_id] = uint16_add(stream_seq, 1)

        await self._transmit()

    setattr(cls, "_get_extensions", get_extensions)  # noqa: B010
    setattr(cls, "_set_extensions", set_extensions)  # noqa: B010
    setattr(cls, "_send", send)  # noqa: B010

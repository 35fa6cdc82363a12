"""The one place that patches aiortc's SCTP stack (version-guarded) and reads its internals.

aiortc's SCTP is pure Python and its cost is per packet (1160 payload bytes), so on a
bulk transfer avoidable per-packet work and poor loss recovery decide the throughput.
Profiles and stalls seen with `scripts/bench_webrtc.py` on aiortc 1.16 led to these
changes; every one keeps the wire behaviour within RFC 9260:

Per-packet work
  R1 `InboundStream.pop_messages` rescans the whole reassembly list on every DATA chunk,
     O(n^2) per 256 KiB message. A chunk appended after all held ones without the
     LAST_FRAG flag cannot complete a message, so the scan is skipped for it.
  R2 `_mark_received` sorts the set of out-of-order TSNs on every packet; ours is O(1).
  S1 `_transmit` scans the whole sent queue for chunks to retransmit on every SACK, but
     only gap reports and T3 expiry ever mark one: a flag says when to scan.
  A1 `_send_sack` acknowledges every packet, and on the sender each SACK costs as much
     as a data packet. We acknowledge every fourth packet, or 2 ms after the first
     unacknowledged one (RFC 9260 section 6.2 allows up to 200 ms; its "every second
     packet" is a SHOULD, and stretch ACKs like these are common TCP practice).
     Gaps and duplicates are still reported at once, and for QUICK_ACK_PACKETS after
     one we go back to SACKing every second packet without delay (as TCP's quick-ack
     mode does), since the sender's window is then small. Slow start grows the window
     by the bytes acknowledged up to SACK_EVERY packets per SACK (TCP's appropriate
     byte counting), so fewer SACKs do not slow it down, and one transmit may add up to
     MAX_BURST = 2 x SACK_EVERY packets to the flight (aiortc: 4, so a SACK for 4 packets
     could only replace them and slow start stalled: 3 s instead of 0.5 s to 1 MB at 70 ms).
     This alone doubles the throughput between two aiortc peers.
Loss recovery (stock aiortc stalled for minutes after a burst of losses)
  A2 SACKs listed every gap and duplicate. Past ~350 gaps a SACK outgrows one packet;
     aiortc moves DTLS records in 1500-byte reads, so it is cut and lost and the sender
     never learns what arrived. We report at most what fits one packet.
  S2 Stock aiortc fast-retransmits a missing chunk again on every third SACK, long
     before its retransmission can have arrived; under heavy loss that fills the
     receiver's socket buffer with duplicates until nothing new gets through. A chunk
     is now struck again only by SACKs acknowledging data sent after its last
     retransmission (RFC 9260 section 7.2.4 says "at most once"; this is the lost-
     retransmission detection TCP stacks use, so a lost retransmission does not wait
     for the T3 timer).
  S3 On T3 expiry only chunks the peer has not reported are re-sent, as Linux does;
     stock aiortc re-sent every outstanding chunk from a one-packet window.
  S5 Loss-based congestion control alone grows the window until the receiver's socket
     buffer overflows; with a CPU-bound receiver (aiortc at ~20 MB/s) that means
     megabytes queued ahead of it, then bursts of hundreds of losses. So growth also
     heeds the queue our data builds, estimated as in TCP Vegas: in flight x (1 - min
     RTT / smoothed RTT). Slow start runs at full speed below half a queue target, at a
     quarter between half and all of it (HyStart++'s conservative slow start); at the
     target the window holds and slow start ends (ssthresh = cwnd). In congestion
     avoidance (after that, or after a loss's Reno halving) the window also grows by a
     quarter of the acknowledged bytes per SACK while the queue stays under a quarter
     of the target: x1.25 per RTT when nothing queues, Reno's one packet per RTT as the
     queue nears the target, nothing at it. The first version had no such regrowth, so
     the first RTT spike (CPU contention) capped a long link for good; a spike now only
     pauses growth. 70 ms link (bench_link, 48 MiB, transport only, 3 rounds in one
     lab): first version 13.4-18.0 MB/s with ssthresh stuck at 1.0-1.5 MB; now
     23.9-27.2 MB/s with a 4 MiB SO_RCVBUF (3 MB windows), no losses either way. With
     208 KiB buffers (stock rmem_max) both lose packets in receiver stalls: 4.9-9.8
     before, 11.4-11.9 now; with 1 MiB, 19.2-19.7 before, 13.8-23.4 now.
     With an unlucky slow start, holding alone (no slow-start exit) overshot to 4 MB
     windows and, with a 1 MiB buffer, lost 600-1000 datagrams at once (6.9-15.2 MB/s).
     The target is per peer (`set_peer`):
       browsers  BROWSER_QUEUE_TARGET, 32 KiB. Chromium reads UDP through a 128 KiB
                 SO_RCVBUF, about 56 of our datagrams: a window above ~60 KB overflows it
                 whenever its network thread stalls for an RTT. aiortc -> Chromium on
                 loopback, 100 MiB x 3, same run: window capped at 56 KB 24.7-29.4
                 MiB/s, no loss; uncapped (~105 KB) 23.9-28.1 MiB/s with 436-640
                 retransmissions; 40 KB moved as much as 56 KB (26.6 vs 27.0).
                 CLI -> browser, 100 MiB x 4, same run: retransmissions 370-693 -> 0-19,
                 fast recoveries 44-52 -> 0-5; throughput unchanged within noise, since
                 that row is CPU-bound on 2 cores (per 100 MiB: CLI 5.3 s + Chromium 9.5 s
                 of CPU, against 3.3 s + 4.6 s for raw aiortc -> Chromium).
       others    an eighth of our ICE sockets' granted SO_RCVBUF (webrtc_ice asks for
                 4 MiB; the kernel reports 8 MiB where rmem_max allows, 416 KiB on stock
                 sysctls), assuming the peer's is alike, within QUEUE_TARGET_MIN..MAX.
       unset     QUEUE_TARGET, 256 KiB (peers built without WebRTCPeer, e.g. benches).
     Measured and left out: pacing (a token bucket on the loop releasing cwnd/sRTT x
     1.25-2 per ms) halved aiortc -> Chromium on loopback (13.8-15.4 -> 7.6-8.2 MiB/s:
     sRTT 4 -> 7 ms, sender CPU +30 %; the receiver is cheapest fed in batches), and
     SACKing a browser sender every second packet (RFC 9260's SHOULD) slowed Chromium
     -> aiortc from 8.8-11.5 to 6.3-7.5 MiB/s (twice the SACKs to build and send).
  S6 With stretch SACKs and a small window, one lost SACK (or the last packets of a
     flight) leaves nothing to trigger another and the association waits for the T3
     timer (at least 1 s). A tail loss probe (as in TCP's RACK-TLP, RFC 8985) re-sends
     the newest chunk after about two RTTs of silence; the duplicate makes the peer
     SACK at once.
Flow control
  S4 The stock sender ignores the peer's receive window, and the stock receiver credits
     its window back as soon as a message is handed to the application. We honour the
     peer's window (one zero-window probe per RTO) and `hold()` unread messages against
     our own, so a slow reader (disk, pipe) slows the sender instead of filling memory.

When the installed aiortc is not a version these were written against, or lacks an
attribute they use, nothing is patched and aiortc behaves as shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

#: set to 1 to run aiortc exactly as shipped (for comparisons and interop debugging)
DISABLE_ENV = "SP2P_WEBRTC_STOCK"
#: aiortc (major, minor) releases whose SCTP internals the patches were written against
PATCHED_VERSIONS = ((1, 16),)
#: our advertised SCTP receive window (the Go peer uses 8 MiB too)
RECEIVE_WINDOW = 8 * 1024 * 1024
#: max-message-size we must advertise: Go and browser peers send 256 KiB messages
MAX_MESSAGE_SIZE = 262144
#: SACK after this many packets at the latest, or SACK_DELAY after the first unacked one
SACK_EVERY = 4
SACK_DELAY = 0.002
#: packets one transmit may add to the flight (RFC 9260's Max.Burst): a stretch SACK frees
#: SACK_EVERY packets and slow start grows the window by as many again
MAX_BURST = 2 * SACK_EVERY
#: after a loss, SACK every second packet without delay for this many packets
QUICK_ACK_PACKETS = 64
#: S5: hold the congestion window once about this much of our data waits in queues; the
#: default for peers `set_peer` was not told about (aiortc's 1 MiB UDP buffer, say)
QUEUE_TARGET = 256 * 1024
#: S5 for CLI/Go peers: an eighth of our granted SO_RCVBUF (the kernel reports twice the
#: request; a 1.2 KB datagram costs ~2.3 KB of it), assuming the peer's is alike, within these
QUEUE_TARGET_MIN = 32 * 1024
QUEUE_TARGET_MAX = 1024 * 1024
#: S5 for browsers: Chromium reads UDP with a 128 KiB SO_RCVBUF, ~56 of our datagrams
BROWSER_QUEUE_TARGET = 32 * 1024
#: S6: a tail loss probe goes out after max(2 x smoothed RTT + SACK_DELAY, PROBE_MIN)
PROBE_MIN = 0.01
#: caps that keep a SACK within one packet (16 + 4 * (gaps + duplicates) < 1189 bytes)
SACK_MAX_GAPS = 200
SACK_MAX_DUPLICATES = 64
_TSN_MODULO = 2**32
_HALF = 2**31

_applied: bool | None = None


def _gt(a: int, b: int) -> bool:
    """Serial-number comparison of TSNs (RFC 1982), as aiortc's uint32_gt."""
    return a != b and ((a - b) % _TSN_MODULO) < _HALF


def _next(tsn: int) -> int:
    return (tsn + 1) % _TSN_MODULO


def aiortc_version() -> tuple[int, int]:
    import aiortc

    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in aiortc.__version__.split(".")]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def apply() -> bool:
    """Install the patches once; True when they are active."""
    global _applied
    if _applied is not None:
        return _applied
    from aiortc import rtcsctptransport as mod

    _ensure_max_message_size(mod)
    _applied = False
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        log.info("%s set: SCTP tuning not applied", DISABLE_ENV)
        return False
    if aiortc_version() not in PATCHED_VERSIONS:
        log.info("aiortc %s.%s: SCTP tuning not applied (untested version)", *aiortc_version())
        return False
    cls = getattr(mod, "RTCSctpTransport", None)
    needed = [
        "_transmit",
        "_send_sack",
        "_receive_sack_chunk",
        "_t3_expired",
        "_mark_received",
        "_send_chunk",
        "_t3_start",
        "_t3_restart",
        "_t3_cancel",
        "_flight_size_increase",
        "_flight_size_decrease",
        "_maybe_abandon",
        "_update_advanced_peer_ack_point",
        "_update_rto",
        "_data_channel_flush",
    ]
    if (
        cls is None
        or not all(hasattr(cls, name) for name in needed)
        or not all(hasattr(mod, n) for n in ("InboundStream", "SackChunk", "USERDATA_MAX_LENGTH"))
        or not hasattr(mod.InboundStream, "pop_messages")
    ):
        log.info("aiortc SCTP internals changed: tuning not applied")
        return False
    _patch_receiver(mod)
    _patch_sender(mod)
    _applied = True
    return True


def _ensure_max_message_size(mod: Any) -> None:
    # aiortc < 1.10 advertised a=max-message-size:65536 although it reassembles messages
    # of any size; pion then refuses to send its 256 KiB messages to us.
    cls = mod.RTCSctpTransport
    size = cls.getCapabilities().maxMessageSize
    if size and size < MAX_MESSAGE_SIZE:
        capabilities = mod.RTCSctpCapabilities

        def get_capabilities(_cls: Any) -> Any:
            return capabilities(maxMessageSize=MAX_MESSAGE_SIZE)

        setattr(cls, "getCapabilities", classmethod(get_capabilities))  # noqa: B010


# -- receiver ---------------------------------------------------------------------


def _patch_receiver(mod: Any) -> None:
    cls = mod.RTCSctpTransport
    stream_cls = mod.InboundStream
    sack_cls = mod.SackChunk
    last_frag = mod.SCTP_DATA_LAST_FRAG
    established = cls.State.ESTABLISHED
    orig_add = stream_cls.add_chunk
    orig_pop = stream_cls.pop_messages

    def add_chunk(self: Any, chunk: Any) -> None:  # R1
        at_end = not self.reassembly or _gt(chunk.tsn, self.reassembly[-1].tsn)
        orig_add(self, chunk)
        # pop_messages() leaves nothing deliverable behind, and a non-final fragment
        # after every held chunk cannot complete a message.
        self._sp2p_skip_pop = at_end and not (chunk.flags & last_frag)

    def pop_messages(self: Any) -> Any:  # R1
        if getattr(self, "_sp2p_skip_pop", False):
            self._sp2p_skip_pop = False
            return iter(())
        return orig_pop(self)

    def mark_received(self: Any, tsn: int) -> bool:  # R2: same result, no sorting
        last = self._last_received_tsn
        misordered = self._sack_misordered
        if not _gt(tsn, last) or tsn in misordered:
            self._sack_duplicates.append(tsn)
            return True
        if tsn != _next(last):
            misordered.add(tsn)
            return False
        last = tsn
        while _next(last) in misordered:
            last = _next(last)
            misordered.discard(last)
        self._last_received_tsn = last
        if self._sack_duplicates:
            self._sack_duplicates = [t for t in self._sack_duplicates if _gt(t, last)]
        return False

    async def send_sack_now(self: Any) -> None:  # A2: aiortc's SACK, cut to one packet
        last = self._last_received_tsn
        offsets = sorted((t - last) % _TSN_MODULO for t in self._sack_misordered)
        gaps: list[tuple[int, int]] = []
        for pos in offsets:
            if gaps and pos == gaps[-1][1] + 1:
                gaps[-1] = (gaps[-1][0], pos)
            elif len(gaps) < SACK_MAX_GAPS and pos <= 0xFFFF:
                gaps.append((pos, pos))
            else:
                break
        sack = sack_cls()
        sack.cumulative_tsn = last
        sack.advertised_rwnd = max(0, self._advertised_rwnd)
        sack.duplicates = self._sack_duplicates[:SACK_MAX_DUPLICATES]
        sack.gaps = gaps
        await self._send_chunk(sack)
        self._sack_duplicates.clear()
        self._sack_needed = False

    def flush_sack(self: Any) -> None:
        self._sp2p_sack_scheduled = False
        if self._sack_needed and self._association_state == established:
            self._sp2p_unacked = 0
            asyncio.ensure_future(send_sack_now(self))

    async def send_sack(self: Any) -> None:  # A1
        unacked = getattr(self, "_sp2p_unacked", 0) + 1
        quick = getattr(self, "_sp2p_quick", 0)
        if self._sack_misordered or self._sack_duplicates:
            quick = QUICK_ACK_PACKETS  # loss: the sender's window is small, keep it clocked
        if (
            unacked >= (2 if quick else SACK_EVERY)
            or self._sack_misordered
            or self._sack_duplicates
            or self._association_state != established
        ):
            self._sp2p_unacked = 0
            self._sp2p_quick = max(0, quick - 1)
            await send_sack_now(self)
            return
        self._sp2p_unacked = unacked
        self._sp2p_quick = max(0, quick - 1)
        if not getattr(self, "_sp2p_sack_scheduled", False):
            self._sp2p_sack_scheduled = True
            self._loop.call_later(0 if quick else SACK_DELAY, flush_sack, self)

    setattr(stream_cls, "add_chunk", add_chunk)  # noqa: B010
    setattr(stream_cls, "pop_messages", pop_messages)  # noqa: B010
    setattr(cls, "_mark_received", mark_received)  # noqa: B010
    setattr(cls, "_send_sack", send_sack)  # noqa: B010
    setattr(cls, "_sp2p_send_sack_now", send_sack_now)  # noqa: B010


# -- sender -----------------------------------------------------------------------


def _patch_sender(mod: Any) -> None:
    cls = mod.RTCSctpTransport
    mtu_data = mod.USERDATA_MAX_LENGTH
    established = cls.State.ESTABLISHED
    orig_update_rto = cls._update_rto

    async def receive_sack_chunk(self: Any, chunk: Any) -> None:
        # aiortc 1.16 _receive_sack_chunk with the changes marked sp2p.
        if _gt(self._last_sacked_tsn, chunk.cumulative_tsn):
            return
        self._sp2p_peer_rwnd = chunk.advertised_rwnd  # sp2p S4
        self._sp2p_acked_at = time.monotonic()  # sp2p S6
        self._sp2p_probes = 0
        received_time = time.time()
        self._last_sacked_tsn = chunk.cumulative_tsn
        cwnd_fully_utilized = self._flight_size >= self._cwnd
        done = 0
        done_bytes = 0
        sent_queue = self._sent_queue
        while sent_queue and not _gt(sent_queue[0].tsn, self._last_sacked_tsn):
            schunk = sent_queue.popleft()
            done += 1
            if not schunk._acked:
                done_bytes += schunk._book_size
            self._flight_size_decrease(schunk)
            if done == 1 and schunk._sent_count == 1:
                self._update_rto(received_time - schunk._sent_time)

        loss = False
        if chunk.gaps:
            seen = set()
            highest_seen_tsn = chunk.cumulative_tsn
            for start, end in chunk.gaps:
                for pos in range(start, end + 1):
                    highest_seen_tsn = (chunk.cumulative_tsn + pos) % _TSN_MODULO
                    seen.add(highest_seen_tsn)
            highest_newly_acked = chunk.cumulative_tsn
            for schunk in sent_queue:
                if _gt(schunk.tsn, highest_seen_tsn):
                    break
                if schunk.tsn in seen:
                    if not schunk._acked:
                        done_bytes += schunk._book_size
                        schunk._acked = True
                        highest_newly_acked = schunk.tsn
                    self._flight_size_decrease(schunk)
            for schunk in sent_queue:
                if _gt(schunk.tsn, highest_newly_acked):
                    break
                if schunk.tsn in seen:
                    continue
                rtx_mark = getattr(schunk, "_sp2p_rtx_mark", None)  # sp2p S2
                if rtx_mark is not None and not _gt(highest_newly_acked, rtx_mark):
                    continue  # its retransmission may still arrive
                schunk._misses += 1
                if schunk._misses == 3:
                    schunk._misses = 0
                    self._sp2p_rtx = True  # sp2p S1
                    if not self._maybe_abandon(schunk):
                        schunk._retransmit = True
                    schunk._acked = False
                    self._flight_size_decrease(schunk)
                    loss = True

        if self._fast_recovery_exit is None:
            if done and cwnd_fully_utilized:
                grow(self, done_bytes)  # sp2p A1, S5
            if loss:
                self._ssthresh = max(self._cwnd // 2, 4 * mtu_data)
                self._cwnd = self._ssthresh
                self._partial_bytes_acked = 0
                self._fast_recovery_exit = sent_queue[-1].tsn
                self._fast_recovery_transmit = True
        elif not _gt(self._fast_recovery_exit, chunk.cumulative_tsn):
            self._fast_recovery_exit = None

        if not sent_queue:
            self._t3_cancel()
        elif done:
            self._t3_restart()
        self._update_advanced_peer_ack_point()
        await self._data_channel_flush()
        await self._transmit()

    def grow(self: Any, acked: int) -> None:  # S5
        target = getattr(self, "_sp2p_queue_target", QUEUE_TARGET)
        queue = _queue_bytes(self)
        if queue >= target:  # hold: more would only lengthen the queue
            self._ssthresh = min(self._ssthresh, self._cwnd)  # and leave slow start
            return
        step = min(acked, SACK_EVERY * mtu_data)  # A1: byte counting, up to a stretch SACK
        if self._cwnd < self._ssthresh:  # slow start, gentler once a queue shows
            self._cwnd += step if queue < target / 2 else step // 4
            return
        if queue < target / 4:  # after a loss: no queue yet, regain the path quickly
            self._cwnd += step // 4
        self._partial_bytes_acked += acked
        if self._partial_bytes_acked >= self._cwnd:
            self._partial_bytes_acked -= self._cwnd
            self._cwnd += mtu_data

    def update_rto(self: Any, rtt: float) -> None:
        # sp2p S5: remember the smallest RTT seen, the path without our queue
        if rtt > 0 and rtt < getattr(self, "_sp2p_min_rtt", float("inf")):
            self._sp2p_min_rtt = rtt
        orig_update_rto(self, rtt)

    def t3_expired(self: Any) -> None:
        # aiortc 1.16 _t3_expired with the changes marked sp2p.
        self._t3_handle = None
        for chunk in self._sent_queue:
            if chunk._acked:  # sp2p S3: the peer has it
                continue
            if not self._maybe_abandon(chunk):
                chunk._retransmit = True
            self._flight_size_decrease(chunk)
        self._update_advanced_peer_ack_point()
        self._fast_recovery_exit = None
        self._partial_bytes_acked = 0
        self._ssthresh = max(self._cwnd // 2, 4 * mtu_data)
        self._cwnd = mtu_data
        self._sp2p_rtx = True  # sp2p S1
        asyncio.ensure_future(self._transmit())

    def window_allows(self: Any, size: int) -> bool:  # S4
        peer_rwnd = getattr(self, "_sp2p_peer_rwnd", None)
        if peer_rwnd is None or self._flight_size + size <= peer_rwnd:
            return True
        if self._flight_size > 0:
            return False  # the next SACK re-evaluates
        if peer_rwnd > 0:
            return True  # one packet, even if larger than the window
        now = time.monotonic()  # zero window, nothing in flight: probe once per RTO
        last = getattr(self, "_sp2p_probe_at", 0.0)
        if now - last >= self._rto:
            self._sp2p_probe_at = now
            return True
        if getattr(self, "_sp2p_probe_timer", None) is None:

            def probe() -> None:
                self._sp2p_probe_timer = None
                if self._association_state == established:
                    asyncio.ensure_future(self._transmit())

            self._sp2p_probe_timer = self._loop.call_later(self._rto - (now - last), probe)
        return False

    async def transmit(self: Any) -> None:
        # aiortc 1.16 _transmit with the changes marked sp2p.
        if self._forward_tsn_chunk is not None:
            await self._send_chunk(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()
        burst_size = (2 if self._fast_recovery_exit is not None else MAX_BURST) * mtu_data  # sp2p
        cwnd = min(self._flight_size + burst_size, self._cwnd)

        if getattr(self, "_sp2p_rtx", True):  # sp2p S1: scan only if something is marked
            retransmit_earliest = True
            for chunk in self._sent_queue:
                if chunk._retransmit:
                    if self._fast_recovery_transmit:
                        self._fast_recovery_transmit = False
                    elif self._flight_size >= cwnd:
                        return
                    self._flight_size_increase(chunk)
                    chunk._misses = 0
                    chunk._retransmit = False
                    chunk._sent_count += 1
                    chunk._sp2p_rtx_mark = self._sent_queue[-1].tsn  # sp2p S2
                    await self._send_chunk(chunk)
                    if retransmit_earliest:
                        self._t3_restart()
                retransmit_earliest = False
            self._sp2p_rtx = False

        outbound = self._outbound_queue
        while (
            outbound and self._flight_size < cwnd and window_allows(self, outbound[0]._book_size)  # sp2p S4
        ):
            chunk = outbound.popleft()
            self._sent_queue.append(chunk)
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            chunk._sent_time = time.time()
            await self._send_chunk(chunk)
            if not self._t3_handle:
                self._t3_start()
        arm_probe(self)  # sp2p S6

    def probe_timeout(self: Any) -> float:
        srtt = self._srtt if self._srtt is not None else PROBE_MIN
        return float(max(2 * srtt + SACK_DELAY, PROBE_MIN) * 2 ** getattr(self, "_sp2p_probes", 0))

    def arm_probe(self: Any) -> None:
        if getattr(self, "_sp2p_probe_handle", None) is None and self._sent_queue:
            self._sp2p_probe_handle = self._loop.call_later(probe_timeout(self), probe_fired, self)

    def probe_fired(self: Any) -> None:  # S6: tail loss probe
        self._sp2p_probe_handle = None
        if self._association_state != established or not self._sent_queue:
            return
        silent = time.monotonic() - getattr(self, "_sp2p_acked_at", 0.0)
        timeout = probe_timeout(self)
        if silent < timeout:  # a SACK came meanwhile: check again later
            self._sp2p_probe_handle = self._loop.call_later(timeout - silent, probe_fired, self)
            return
        # Data outstanding and no SACK for a while: the last SACK or the last packets
        # were lost. Re-send the newest chunk; the peer answers a duplicate at once.
        newest = self._sent_queue[-1]
        newest._sent_count += 1  # no RTT sample from it (Karn)
        self._sp2p_probes = getattr(self, "_sp2p_probes", 0) + 1
        self._sp2p_acked_at = time.monotonic()
        asyncio.ensure_future(self._send_chunk(newest))
        arm_probe(self)

    setattr(cls, "_receive_sack_chunk", receive_sack_chunk)  # noqa: B010
    setattr(cls, "_t3_expired", t3_expired)  # noqa: B010
    setattr(cls, "_update_rto", update_rto)  # noqa: B010
    setattr(cls, "_transmit", transmit)  # noqa: B010


def _queue_bytes(sctp: Any) -> float:
    """Our bytes waiting in queues on the path: in flight x (1 - min RTT / smoothed RTT),
    as TCP Vegas estimates it; 0 before the first RTT sample."""
    srtt = sctp._srtt
    min_rtt = getattr(sctp, "_sp2p_min_rtt", None)
    if not srtt or min_rtt is None:
        return 0.0
    return float(sctp._flight_size * (srtt - min_rtt) / srtt)


# -- accessors used by webrtc.py / webrtc_channel.py (loop thread only) -------------


def set_receive_window(sctp: Any) -> None:
    """Advertise RECEIVE_WINDOW (when patched); call before the association starts."""
    if _applied:
        with contextlib.suppress(AttributeError):
            sctp._advertised_rwnd = max(sctp._advertised_rwnd, RECEIVE_WINDOW)


def set_peer(sctp: Any, *, browser: bool, receive_buffer: int | None) -> None:
    """Choose S5's queue target for this association: BROWSER_QUEUE_TARGET for a browser,
    else an eighth of `receive_buffer` (our ICE sockets' granted SO_RCVBUF, as reported)."""
    if browser:
        sctp._sp2p_queue_target = BROWSER_QUEUE_TARGET
    elif receive_buffer:
        sctp._sp2p_queue_target = min(max(receive_buffer // 8, QUEUE_TARGET_MIN), QUEUE_TARGET_MAX)


def hold(sctp: Any, size: int) -> None:
    """Count `size` delivered-but-unread bytes against our receive window."""
    if _applied:
        sctp._advertised_rwnd -= size


def release(sctp: Any, size: int) -> None:
    """The reader consumed `size` bytes: reopen the window, telling the sender if it was low."""
    if not _applied:
        return
    before = sctp._advertised_rwnd
    sctp._advertised_rwnd = before + size
    half = RECEIVE_WINDOW // 2
    if before < half <= sctp._advertised_rwnd and sctp._association_state == type(sctp).State.ESTABLISHED:
        asyncio.ensure_future(sctp._sp2p_send_sack_now())


def outbound_idle(sctp: Any) -> bool:
    """True when everything sent was acknowledged (or the association is gone)."""
    try:
        if sctp._association_state != type(sctp).State.ESTABLISHED:
            return True
        return not (sctp._data_channel_queue or sctp._outbound_queue or sctp._sent_queue)
    except AttributeError:
        return True


def remote_max_message_size(sctp: Any) -> int:
    """The peer's a=max-message-size (0 = unlimited); 65536 when unknown (RFC 8841)."""
    value = getattr(sctp, "_remote_max_message_size", 65536)
    return value if isinstance(value, int) else 65536

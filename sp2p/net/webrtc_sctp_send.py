"""Send-side patches on aiortc's SCTP (S1-S8 of docs/webrtc-tuning.md).

Installed by webrtc_sctp.apply() only on the aiortc release they were written against;
`receive_sack_chunk`, `t3_expired` and `transmit` are aiortc 1.16's own with the lines
marked sp2p changed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sp2p.net.webrtc_sctp_math import (
    CLI_MAX_BURST,
    MAX_BURST,
    QUEUE_TARGET,
    TSN_MODULO,
    Window,
    loss_threshold,
    peer_window_allows,
    queue_bytes,
    tsn_gt,
)
from sp2p.net.webrtc_sctp_math import grow as math_grow
from sp2p.net.webrtc_sctp_math import probe_timeout as probe_delay

#: S8: with a browser, new data waits until this many packets fit the window at once
BROWSER_BURST = 8


def burst_waits(flight: int, cwnd: int, burst: int) -> bool:
    """S8: hold new data while fewer than `burst` bytes fit the window and at least as much is
    in flight (its SACKs will come); never with a window under two bursts."""
    return cwnd >= 2 * burst and flight >= burst and cwnd - flight < burst


#: (class name, function) this module replaces; tests/net/test_webrtc_patches.py fingerprints each
PATCHED = (
    ("RTCSctpTransport", "_receive_sack_chunk"),
    ("RTCSctpTransport", "_t3_expired"),
    ("RTCSctpTransport", "_update_rto"),
    ("RTCSctpTransport", "_transmit"),
)


def install(mod: Any) -> None:
    cls = mod.RTCSctpTransport
    mtu_data = mod.USERDATA_MAX_LENGTH
    established = cls.State.ESTABLISHED
    orig_update_rto = cls._update_rto

    async def receive_sack_chunk(self: Any, chunk: Any) -> None:
        # aiortc 1.16 _receive_sack_chunk with the changes marked sp2p.
        if tsn_gt(self._last_sacked_tsn, chunk.cumulative_tsn):
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
        while sent_queue and not tsn_gt(sent_queue[0].tsn, self._last_sacked_tsn):
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
                    highest_seen_tsn = (chunk.cumulative_tsn + pos) % TSN_MODULO
                    seen.add(highest_seen_tsn)
            highest_newly_acked = chunk.cumulative_tsn
            for schunk in sent_queue:
                if tsn_gt(schunk.tsn, highest_seen_tsn):
                    break
                if schunk.tsn in seen:
                    if not schunk._acked:
                        done_bytes += schunk._book_size
                        schunk._acked = True
                        highest_newly_acked = schunk.tsn
                    self._flight_size_decrease(schunk)
            for schunk in sent_queue:
                if tsn_gt(schunk.tsn, highest_newly_acked):
                    break
                if schunk.tsn in seen:
                    continue
                rtx_mark = getattr(schunk, "_sp2p_rtx_mark", None)  # sp2p S2
                if rtx_mark is not None and not tsn_gt(highest_newly_acked, rtx_mark):
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
                self._ssthresh = loss_threshold(self._cwnd, mtu_data)
                self._cwnd = self._ssthresh
                self._partial_bytes_acked = 0
                self._fast_recovery_exit = sent_queue[-1].tsn
                self._fast_recovery_transmit = True
        elif not tsn_gt(self._fast_recovery_exit, chunk.cumulative_tsn):
            self._fast_recovery_exit = None

        if not chunk.gaps and self._fast_recovery_exit is None and is_pion(self):
            # sp2p S7: the rest once per read batch (loss recovery keeps its per-SACK pace)
            self._sp2p_batch_acked = self.__dict__.get("_sp2p_batch_acked", 0) + done
            if not self.__dict__.get("_sp2p_tail_soon"):
                self._sp2p_tail_soon = True
                self._loop.call_soon(sack_tail, self)
            return
        if not sent_queue:
            self._t3_cancel()
        elif done:
            self._t3_restart()
        self._update_advanced_peer_ack_point()
        await self._data_channel_flush()
        await self._transmit()

    def is_pion(self: Any) -> bool:
        """A non-browser peer that did not announce M1's parameter: a Go (pion) CLI, which
        SACKs about every second packet (A3 in webrtc_sctp_recv reads the same marks)."""
        return "_sp2p_probe" not in self.__dict__ and self.__dict__.get("_sp2p_peer_browser") is False

    def is_ours(self: Any) -> bool:
        """One of our CLIs: it announced M1's parameter (browsers get M3's probe too)."""
        return "_sp2p_probe" in self.__dict__ and self.__dict__.get("_sp2p_peer_browser") is False

    def sack_tail(self: Any) -> None:  # S7
        self._sp2p_tail_soon = False
        done = self._sp2p_batch_acked
        self._sp2p_batch_acked = 0
        if self._association_state != established:
            return
        if not self._sent_queue:
            self._t3_cancel()
        elif done:
            self._t3_restart()
        self._update_advanced_peer_ack_point()
        self._sp2p_burst_extra = done  # the batch freed `done` packets: refill them at once
        asyncio.ensure_future(flush_and_transmit(self))

    async def flush_and_transmit(self: Any) -> None:
        await self._data_channel_flush()
        await self._transmit()

    def grow(self: Any, acked: int) -> None:  # A1, S5
        window = Window(self._cwnd, self._ssthresh, self._partial_bytes_acked)
        queue = queue_bytes(self._flight_size, self._srtt, getattr(self, "_sp2p_min_rtt", None))
        packet = self.__dict__.get("_sp2p_chunk_size", mtu_data)  # M1
        math_grow(window, acked, queue, getattr(self, "_sp2p_queue_target", QUEUE_TARGET), packet)
        self._cwnd, self._ssthresh, self._partial_bytes_acked = (
            window.cwnd, window.ssthresh, window.partial_bytes_acked)

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
        self._ssthresh = loss_threshold(self._cwnd, mtu_data)
        self._cwnd = mtu_data
        self._sp2p_rtx = True  # sp2p S1
        asyncio.ensure_future(self._transmit())

    def window_allows(self: Any, size: int) -> bool:  # S4
        allowed = peer_window_allows(self._flight_size, size, getattr(self, "_sp2p_peer_rwnd", None))
        if allowed is not None:
            return allowed
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
        packet = self.__dict__.get("_sp2p_chunk_size", mtu_data)  # sp2p M1
        extra = self.__dict__.pop("_sp2p_burst_extra", 0)  # sp2p S7
        burst = CLI_MAX_BURST if is_ours(self) else MAX_BURST  # sp2p A4
        burst_size = (2 if self._fast_recovery_exit is not None else burst + extra) * packet  # sp2p
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
        if (  # sp2p S8: a browser is cheapest fed in bursts, not the 2 packets each SACK frees
            self.__dict__.get("_sp2p_peer_browser")
            and self._fast_recovery_exit is None
            and burst_waits(self._flight_size, self._cwnd, BROWSER_BURST * packet)
        ):
            arm_probe(self)
            return
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
        return probe_delay(self._srtt, getattr(self, "_sp2p_probes", 0))

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

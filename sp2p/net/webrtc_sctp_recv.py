"""Receive-side patches on aiortc's SCTP (R1, R2, A1-A4 of docs/webrtc-tuning.md).

Installed by webrtc_sctp.apply() only on the aiortc release they were written against.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sp2p.net.webrtc_sctp_math import (
    CLI_SACK_EVERY,
    QUICK_ACK_PACKETS,
    SACK_DELAY,
    SACK_EVERY,
    SACK_MAX_DUPLICATES,
    extend_blocks,
    gap_blocks,
    gap_offsets,
    sack_now,
    tsn_gt,
    tsn_next,
)

#: (class name, function) this module replaces; tests/net/test_webrtc_patches.py fingerprints each
PATCHED = (
    ("InboundStream", "add_chunk"),
    ("InboundStream", "pop_messages"),
    ("RTCSctpTransport", "_mark_received"),
    ("RTCSctpTransport", "_send_sack"),
)


def install(mod: Any) -> None:
    cls = mod.RTCSctpTransport
    stream_cls = mod.InboundStream
    sack_cls = mod.SackChunk
    last_frag = mod.SCTP_DATA_LAST_FRAG
    established = cls.State.ESTABLISHED
    orig_add = stream_cls.add_chunk
    orig_pop = stream_cls.pop_messages

    def add_chunk(self: Any, chunk: Any) -> None:  # R1
        at_end = not self.reassembly or tsn_gt(chunk.tsn, self.reassembly[-1].tsn)
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
        if not tsn_gt(tsn, last) or tsn in misordered:
            self._sack_duplicates.append(tsn)
            return True
        blocks = cached_blocks(self)
        if tsn != tsn_next(last):
            misordered.add(tsn)
            if blocks is not None and not extend_blocks(blocks, tsn):
                self._sp2p_blocks = None
            return False
        last = tsn
        if misordered:
            while tsn_next(last) in misordered:
                last = tsn_next(last)
                misordered.discard(last)
            if blocks:  # A2: keep the runs beyond the cumulative TSN current
                if blocks[0][1] == last:
                    blocks.pop(0)  # the gap before the first run was filled
                elif not tsn_gt(blocks[0][0], tsn_next(last)):
                    self._sp2p_blocks = None
        self._last_received_tsn = last
        if self._sack_duplicates:
            self._sack_duplicates = [t for t in self._sack_duplicates if tsn_gt(t, last)]
        return False

    def cached_blocks(self: Any) -> list[list[int]] | None:
        """A2's runs of out-of-order TSNs, if still those of the current set (aiortc's
        FORWARD-TSN handling replaces the set)."""
        if self.__dict__.get("_sp2p_blocks_of") is not self._sack_misordered:
            return None
        blocks: list[list[int]] | None = self.__dict__.get("_sp2p_blocks")
        return blocks

    async def send_sack_now(self: Any) -> None:  # A2: aiortc's SACK, cut to one packet
        last = self._last_received_tsn
        blocks = cached_blocks(self)
        if blocks is None:  # sort once; mark_received keeps them up to date from here
            blocks = self._sp2p_blocks = gap_blocks(last, self._sack_misordered)
            self._sp2p_blocks_of = self._sack_misordered
        sack = sack_cls()
        sack.cumulative_tsn = last
        sack.advertised_rwnd = max(0, self._advertised_rwnd)
        sack.duplicates = self._sack_duplicates[:SACK_MAX_DUPLICATES]
        sack.gaps = gap_offsets(last, blocks)
        await self._send_chunk(sack)
        self._sack_duplicates.clear()
        self._sack_needed = False

    def flush_sack(self: Any) -> None:
        self._sp2p_sack_scheduled = False
        if self._sack_needed and self._association_state == established:
            self._sp2p_unacked = 0
            asyncio.ensure_future(send_sack_now(self))

    def sack_every(self: Any) -> int:
        """A1/A3/A4: stretch for this peer: CLI_SACK_EVERY for a CLI (Go's or ours: `set_peer`
        was told it is no browser), SACK_EVERY for a browser or a peer set_peer was not told
        about (M3 probes browsers too, so _sp2p_probe does not tell a CLI)."""
        return CLI_SACK_EVERY if self.__dict__.get("_sp2p_peer_browser") is False else SACK_EVERY

    async def send_sack(self: Any) -> None:  # A1
        unacked = getattr(self, "_sp2p_unacked", 0) + 1
        quick = getattr(self, "_sp2p_quick", 0)
        irregular = bool(self._sack_misordered or self._sack_duplicates)
        if irregular:
            quick = QUICK_ACK_PACKETS  # loss: the sender's window is small, keep it clocked
        self._sp2p_quick = max(0, quick - 1)
        if sack_now(unacked, quick=bool(quick), irregular=irregular,
                    established=self._association_state == established,
                    every=sack_every(self)):
            self._sp2p_unacked = 0
            await send_sack_now(self)
            return
        self._sp2p_unacked = unacked
        if not getattr(self, "_sp2p_sack_scheduled", False):
            self._sp2p_sack_scheduled = True
            self._loop.call_later(0 if quick else SACK_DELAY, flush_sack, self)

    setattr(stream_cls, "add_chunk", add_chunk)  # noqa: B010
    setattr(stream_cls, "pop_messages", pop_messages)  # noqa: B010
    setattr(cls, "_mark_received", mark_received)  # noqa: B010
    setattr(cls, "_send_sack", send_sack)  # noqa: B010
    setattr(cls, "_sp2p_send_sack_now", send_sack_now)  # noqa: B010

"""The arithmetic of sp2p's SCTP tuning as pure functions: TSN serial numbers, SACK gap
blocks, congestion-window growth, the queue estimate, the tail-loss-probe timeout and the
peer-window check. No aiortc here; the patches (webrtc_sctp_recv/send) feed these numbers
from the association. Letters (A1, S5, ...) are those of docs/webrtc-tuning.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TSN_MODULO = 2**32
_HALF = 2**31

#: A1: SACK a browser after this many packets at the latest, or SACK_DELAY after the first
#: unacked one
SACK_EVERY = 4
SACK_DELAY = 0.002
#: A3, A4: the same for a CLI peer (Go's pion or ours): each SACK costs us a DTLS seal and a
#: sendto and the sender its handling, and both grow their window per byte acknowledged
CLI_SACK_EVERY = 8
#: A1: packets one transmit may add to the flight (RFC 9260's Max.Burst): a stretch SACK frees
#: up to SACK_EVERY packets and slow start grows the window by as many again ...
MAX_BURST = 2 * SACK_EVERY
#: ... and A4: CLI_SACK_EVERY to our own CLIs (pion SACKs every second packet, and longer
#: bursts into its 208 KiB socket buffer cost ours -> Go ~10 %)
CLI_MAX_BURST = 2 * CLI_SACK_EVERY
#: A1: after a loss, SACK every second packet without delay for this many packets
QUICK_ACK_PACKETS = 64
#: S5: hold the congestion window once about this much of our data waits in queues; the
#: default for peers `set_peer` was not told about (aiortc's 1 MiB UDP buffer, say)
QUEUE_TARGET = 256 * 1024
#: S5 for CLI/Go peers: an eighth of our granted SO_RCVBUF (the kernel reports twice the
#: request; a 1.2 KB datagram costs ~2.3 KB of it), assuming the peer's is alike, within these
QUEUE_TARGET_MIN = 32 * 1024
QUEUE_TARGET_MAX = 1024 * 1024
#: S5 for browsers: Chromium's UDP sockets hold 128 KiB (rb131072 in `ss -m`), ~30 of M3's 2 KB
#: datagrams (~56 of 1.2 KB ones): ~60 KB of data either way, each costing the kernel ~2x its
#: size; this target is about half of that
BROWSER_QUEUE_TARGET = 32 * 1024
#: S6: a tail loss probe goes out after max(2 x smoothed RTT + SACK_DELAY, PROBE_MIN)
PROBE_MIN = 0.01
#: W1: the receive window we advertise: at most RECEIVE_WINDOW (the Go peer uses 8 MiB too),
#: at most half our sockets' granted SO_RCVBUF (a queued 1.2 KB datagram costs the kernel
#: ~1.4-2x its size), but not below RECEIVE_WINDOW_MIN (long links need a BDP of window)
RECEIVE_WINDOW = 8 * 1024 * 1024
RECEIVE_WINDOW_MIN = 1024 * 1024
#: A2: caps that keep a SACK within one packet (16 + 4 * (gaps + duplicates) < 1189 bytes)
SACK_MAX_GAPS = 200
SACK_MAX_DUPLICATES = 64


def tsn_gt(a: int, b: int) -> bool:
    """Serial-number comparison of TSNs (RFC 1982), as aiortc's uint32_gt."""
    return a != b and ((a - b) % TSN_MODULO) < _HALF


def tsn_next(tsn: int) -> int:
    return (tsn + 1) % TSN_MODULO


def gap_blocks(last: int, misordered: Iterable[int]) -> list[list[int]]:
    """A2: the TSNs received beyond the cumulative TSN `last`, as [first, last] runs of
    absolute TSNs in serial order (what `extend_blocks` then keeps up to date)."""
    blocks: list[list[int]] = []
    for pos in sorted((t - last) % TSN_MODULO for t in misordered):
        if blocks and pos == blocks[-1][1] + 1:
            blocks[-1][1] = pos
        else:
            blocks.append([pos, pos])
    return [[(last + a) % TSN_MODULO, (last + b) % TSN_MODULO] for a, b in blocks]


def extend_blocks(blocks: list[list[int]], tsn: int) -> bool:
    """Record the newly received out-of-order `tsn` in `blocks` when it extends the last run
    or starts one after it (the common case after a loss); False when it falls anywhere
    else and the blocks must be rebuilt with `gap_blocks`."""
    if blocks:
        end = blocks[-1][1]
        if tsn == (end + 1) % TSN_MODULO:
            blocks[-1][1] = tsn
            return True
        if not tsn_gt(tsn, end):
            return False
    blocks.append([tsn, tsn])
    return True


def gap_offsets(last: int, blocks: list[list[int]]) -> list[tuple[int, int]]:
    """A2: SACK gap-ack blocks (offsets from the cumulative TSN `last`) for `blocks`, at most
    SACK_MAX_GAPS of them and none past a 16-bit offset."""
    gaps: list[tuple[int, int]] = []
    for first, end in blocks[:SACK_MAX_GAPS]:
        start, stop = (first - last) % TSN_MODULO, (end - last) % TSN_MODULO
        if stop > 0xFFFF:
            if start <= 0xFFFF:
                gaps.append((start, 0xFFFF))
            break
        gaps.append((start, stop))
    return gaps


def sack_now(unacked: int, *, quick: bool, irregular: bool, established: bool,
             every: int = SACK_EVERY) -> bool:
    """A1: whether the packet just received (the `unacked`-th since the last SACK) is
    SACKed at once: every `every`-th packet, every second in quick-ack mode, and at once
    on a gap or duplicate (`irregular`) or outside the established state."""
    return unacked >= (2 if quick else every) or irregular or not established


def queue_bytes(flight: int, srtt: float | None, min_rtt: float | None) -> float:
    """S5: our bytes waiting in queues on the path, in flight x (1 - min RTT / smoothed RTT)
    as TCP Vegas estimates it; 0 before the first RTT sample."""
    if not srtt or min_rtt is None:
        return 0.0
    return float(flight * (srtt - min_rtt) / srtt)


@dataclass
class Window:
    """The congestion state S5 changes: window, slow-start threshold, bytes acked in
    congestion avoidance (RFC 9260's partial_bytes_acked)."""

    cwnd: int
    ssthresh: int
    partial_bytes_acked: int


def grow(w: Window, acked: int, queue: float, target: int, mtu: int) -> None:
    """A1 + S5: grow `w` for `acked` newly acknowledged bytes with `queue` bytes of ours
    queued on the path (`queue_bytes`), against the peer's queue `target`."""
    if queue >= target:  # hold: more would only lengthen the queue
        w.ssthresh = min(w.ssthresh, w.cwnd)  # and leave slow start
        return
    step = min(acked, CLI_SACK_EVERY * mtu)  # A1: byte counting, up to a stretch SACK
    if w.cwnd < w.ssthresh:  # slow start, gentler once a queue shows
        w.cwnd += step if queue < target / 2 else step // 4
        return
    if queue < target / 4:  # after a loss: no queue yet, regain the path quickly
        w.cwnd += step // 4
    w.partial_bytes_acked += acked
    if w.partial_bytes_acked >= w.cwnd:
        w.partial_bytes_acked -= w.cwnd
        w.cwnd += mtu


def loss_threshold(cwnd: int, mtu: int) -> int:
    """RFC 9260 7.2.3/7.2.4: ssthresh after a loss (fast retransmit or T3 expiry)."""
    return max(cwnd // 2, 4 * mtu)


def queue_target(*, browser: bool, receive_buffer: int | None) -> int | None:
    """S5: the queue target for a peer; None keeps QUEUE_TARGET."""
    if browser:
        return BROWSER_QUEUE_TARGET
    if receive_buffer:
        return min(max(receive_buffer // 8, QUEUE_TARGET_MIN), QUEUE_TARGET_MAX)
    return None


def receive_window(receive_buffer: int | None) -> int:
    """W1: the window to advertise for our sockets' granted SO_RCVBUF (None: unknown)."""
    if not receive_buffer:
        return RECEIVE_WINDOW
    return min(RECEIVE_WINDOW, max(receive_buffer // 2, RECEIVE_WINDOW_MIN))


def probe_timeout(srtt: float | None, probes: int) -> float:
    """S6: silence after which a tail loss probe goes out, doubling per unanswered probe."""
    base = srtt if srtt is not None else PROBE_MIN
    return float(max(2 * base + SACK_DELAY, PROBE_MIN) * 2**probes)


def peer_window_allows(flight: int, size: int, peer_rwnd: int | None) -> bool | None:
    """S4: may a chunk of `size` go out with `flight` bytes in flight? None: only as a
    zero-window probe (nothing in flight and the peer's window is closed)."""
    if peer_rwnd is None or flight + size <= peer_rwnd:
        return True
    if flight > 0:
        return False  # the next SACK re-evaluates
    if peer_rwnd > 0:
        return True  # one packet, even if larger than the window
    return None

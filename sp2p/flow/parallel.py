"""Parallel-TCP negotiation and set-up (client.md §3.11), run right after key confirmation.

The sender measures the round-trip time with three probes and asks for a stream
count; the receiver offers its own; both use the smaller. With two or more, the side
that dialed the primary connection dials the secondaries and the other accepts them
on its listener; both then confirm how many connected and switch to the multi-stream
link only when the counts agree. Every failure falls back to the single stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sp2p.errors import LocalProtocolError, RemoteProtocolError, TransferTimeout
from sp2p.link.framed import Frame, FramedChannel, FrameLink
from sp2p.link.multistream import MultiStreamLink
from sp2p.log import get_logger
from sp2p.net.secondary import accept_secondaries, close_all, dial_secondaries
from sp2p.proto.constants import MsgType
from sp2p.proto.keys import SessionKeys
from sp2p.proto.messages import parse_probe_body, parse_ready_body, probe_body, ready_body
from sp2p.proto.parallel import (
    PARALLEL_THRESHOLD,
    PHASE_DEADLINE,
    RECEIVER_DEFAULT_STREAMS,
    RTT_PROBES,
    agreed_streams,
    link_rtt,
    streams_for_rtt,
)

log = get_logger(__name__)

StatusFn = Callable[[str], None]


def eligible(fc: FramedChannel, own_flag: bool, peer_flag: bool) -> bool:
    """Both advertised parallelTCP and TCP won: the same answer on both sides."""
    return own_flag and peer_flag and fc.channel.parallel_tcp() is not None


def sender_link(
    fc: FramedChannel, keys: SessionKeys, size: int, forced: int, status: StatusFn = lambda s: None
) -> FrameLink:
    agreed = _sender_count(fc, size, forced, status)
    return _open_streams(fc, keys, agreed, status)


def receiver_link(
    fc: FramedChannel, keys: SessionKeys, forced: int, status: StatusFn = lambda s: None
) -> FrameLink:
    agreed = _receiver_count(fc, forced)
    return _open_streams(fc, keys, agreed, status)


# -- counts -----------------------------------------------------------------------------------
def _sender_count(fc: FramedChannel, size: int, forced: int, status: StatusFn) -> int:
    if size < PARALLEL_THRESHOLD and forced == 0:
        # One stream whatever the receiver answers: go on at once (its Ready would cost a round
        # trip before Metadata) and let the link drop that Ready when it arrives.
        fc.send_frame(MsgType.PARALLEL_READY, ready_body(1))
        fc.discard_next(MsgType.PARALLEL_READY)
        return 1
    if forced >= 2:
        wanted = forced  # a forced count needs no probing; the receiver accepts Ready first
    else:
        try:
            rtt = _probe_rtt(fc)
        except (RemoteProtocolError, TransferTimeout) as exc:
            status(f"RTT probe failed ({exc}); single stream")
            fc.send_frame(MsgType.PARALLEL_READY, ready_body(1))
            _discard_until_ready(fc)
            return 1
        wanted = streams_for_rtt(rtt)
        status(f"RTT {rtt * 1000:.1f} ms -> {wanted} stream(s)")
    fc.send_frame(MsgType.PARALLEL_READY, ready_body(wanted))
    return agreed_streams(wanted, _expect_ready(fc))


def _probe_rtt(fc: FramedChannel) -> float:
    samples = []
    for _ in range(RTT_PROBES):
        stamp = time.time_ns()
        started = time.monotonic()
        fc.send_frame(MsgType.PARALLEL_PROBE, probe_body(stamp))
        frame = _read(fc)
        if frame.msg_type != MsgType.PARALLEL_PROBE or parse_probe_body(frame.body) != stamp:
            raise RemoteProtocolError("the receiver did not echo the RTT probe")
        samples.append(time.monotonic() - started)
    return link_rtt(samples)


def _receiver_count(fc: FramedChannel, forced: int) -> int:
    frame = _read(fc)
    probes = 0
    while frame.msg_type == MsgType.PARALLEL_PROBE:
        parse_probe_body(frame.body)
        fc.send_frame(MsgType.PARALLEL_PROBE, frame.body)
        probes += 1
        frame = _read(fc)
        if probes == RTT_PROBES or frame.msg_type != MsgType.PARALLEL_PROBE:
            break
    if frame.msg_type != MsgType.PARALLEL_READY:
        raise RemoteProtocolError(f"expected the parallel-TCP negotiation, got frame 0x{frame.msg_type:02x}")
    sender = parse_ready_body(frame.body)
    own = forced if forced > 0 else RECEIVER_DEFAULT_STREAMS
    fc.send_frame(MsgType.PARALLEL_READY, ready_body(own))
    return agreed_streams(sender, own)


def _read(fc: FramedChannel) -> Frame:
    """The next negotiation frame within the phase deadline (heartbeats skipped, leniently)."""
    deadline = time.monotonic() + PHASE_DEADLINE
    while True:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            frame = fc.recv_frame(timeout=left)
        except TimeoutError:
            raise TransferTimeout("the peer did not answer the parallel-TCP negotiation") from None
        if frame is None:
            raise RemoteProtocolError("the peer closed the connection during parallel-TCP negotiation")
        if frame.msg_type in (MsgType.CANCEL, MsgType.ERROR):
            raise RemoteProtocolError("the peer stopped during parallel-TCP negotiation")
        if frame.msg_type != MsgType.HEARTBEAT:
            return frame


def _expect_ready(fc: FramedChannel) -> int:
    frame = _read(fc)
    if frame.msg_type != MsgType.PARALLEL_READY:
        raise RemoteProtocolError(f"expected parallel-TCP ready, got frame 0x{frame.msg_type:02x}")
    return parse_ready_body(frame.body)


def _discard_until_ready(fc: FramedChannel) -> None:
    while _read(fc).msg_type != MsgType.PARALLEL_READY:
        pass


# -- secondary connections ----------------------------------------------------------------------
def _open_streams(fc: FramedChannel, keys: SessionKeys, agreed: int, status: StatusFn) -> FrameLink:
    primary = fc.channel.parallel_tcp()
    if primary is None:
        raise LocalProtocolError("parallel TCP negotiated on a link that is not TCP")
    if agreed <= 1:
        primary.close_spare_listener()
        return fc
    count = agreed - 1
    deadline = time.monotonic() + PHASE_DEADLINE
    token = keys.parallel_token()
    if primary.dialed:
        found = dial_secondaries(primary.peer_address(), token, count, deadline)
    elif primary.spare_listener is not None:
        found = accept_secondaries(primary.spare_listener, token, count, deadline)
    else:
        found = {}
    primary.close_spare_listener()
    # compacted in index order: the k-th connected secondary is stream k (as Go pairs them)
    compacted = [found[i] for i in sorted(found)]
    total = 1 + len(compacted)
    try:
        fc.send_frame(MsgType.PARALLEL_READY, ready_body(total))
        peer_total = _expect_ready(fc)
    except BaseException:
        close_all(found)
        raise
    if peer_total != total or total <= 1:
        status(f"parallel streams: {total} here, {peer_total} at the peer; single stream")
        close_all(found)
        return fc
    secondaries = [(ch, *keys.parallel_keys(k)) for k, ch in enumerate(compacted, start=1)]
    return MultiStreamLink(fc, secondaries)

"""H1 of docs/webrtc-tuning.md: the association's round trip, for the compression controller
(sp2p/proto/adapt.py start_level: a far link starts at `-compress N`, like TCP does).

aiortc's smoothed RTT comes from DATA chunks and their SACKs only, and overstates the path
where the peer delays its SACK: pion holds a lone packet's SACK up to 200 ms, so one message
each way on loopback can read as a far link. The handshake does not wait: INIT is answered by
INIT-ACK and COOKIE-ECHO by COOKIE-ACK at once by every SCTP stack (aiortc, pion, Chromium's
dcsctp, Firefox's usrsctp), and both come before the channel opens, so the first transfer
frame already has the figure. Karn's rule holds: an answer to a chunk T1 re-sent is no sample.

Instance-level wrappers on aiortc's `_send_chunk` and `_receive_chunk`, removed once the
association is up: nothing on the data path. The clock is read before the send: `_send_chunk`
can yield while the datagram leaves, and a loop busy elsewhere resumes it milliseconds later
(stamped after the send, the 70 ms link read 66.8 ms once).
"""

from __future__ import annotations

import time
from typing import Any

#: the least handshake round trip seen on this association (seconds)
HANDSHAKE_RTT = "_sp2p_handshake_rtt"


def watch_handshake(sctp: Any, mod: Any) -> None:
    """Time INIT -> INIT-ACK and COOKIE-ECHO -> COOKIE-ACK on `sctp` (aiortc module `mod`);
    call before the association starts."""
    state = type(sctp).State
    answer_in = {  # chunk we sent -> (its answer, the state that answer is taken in)
        mod.InitChunk: (mod.InitAckChunk, state.COOKIE_WAIT),
        mod.CookieEchoChunk: (mod.CookieAckChunk, state.COOKIE_ECHOED),
    }
    send, receive = sctp._send_chunk, sctp._receive_chunk
    sent: list[tuple[type, float]] = []

    async def timed_send(chunk: Any) -> None:
        if type(chunk) in answer_in:
            sent[:] = [(type(chunk), time.monotonic())]
        await send(chunk)

    async def timed_receive(chunk: Any) -> None:
        # T1 still running for the chunk, never expired (the answer may be to a re-send)
        if sent and getattr(sctp, "_t1_handle", None) is not None and getattr(sctp, "_t1_failures", 1) == 0:
            answer, in_state = answer_in[sent[0][0]]
            if isinstance(chunk, answer) and sctp._association_state == in_state:
                record(sctp, time.monotonic() - sent[0][1])
        await receive(chunk)
        if sctp._association_state in (state.ESTABLISHED, state.CLOSED):
            for name, ours in (("_send_chunk", timed_send), ("_receive_chunk", timed_receive)):
                if sctp.__dict__.get(name) is ours:  # M1's probe may have put its own there
                    del sctp.__dict__[name]

    sctp._send_chunk = timed_send
    sctp._receive_chunk = timed_receive


def record(sctp: Any, sample: float) -> None:
    """Keep the least sample: a busy loop or a queue only ever adds to the path's round trip."""
    if sample > 0:
        sctp.__dict__[HANDSHAKE_RTT] = min(sample, sctp.__dict__.get(HANDSHAKE_RTT, sample))


def round_trip(sctp: Any) -> float | None:
    """The least round trip this association saw: the handshake's, or a DATA chunk's (S5's
    min RTT, aiortc's smoothed RTT where the tuning is off); None before any. Each source can
    only overstate the path (delayed SACKs, queues, a busy peer), so the least is the path's.
    Plain attribute reads: safe from any thread."""
    seen = [t for t in (sctp.__dict__.get(HANDSHAKE_RTT), sctp.__dict__.get("_sp2p_min_rtt"),
                        getattr(sctp, "_srtt", None)) if t]  # fmt: skip
    return min(seen) if seen else None

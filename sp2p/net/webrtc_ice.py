"""ICE plumbing for webrtc.py: server lists, trickled candidates, socket buffers, relay check.

Reads (never patches) aioice internals, each access guarded so a changed aioice only
loses the optimisation or the "(relay)" label.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCIceCandidate, RTCIceServer

log = logging.getLogger(__name__)

#: UDP socket buffer asked for (the kernel caps it at net.core.[rw]mem_max); a bigger
#: buffer rides out the moments the loop thread is busy without dropping packets, and
#: lets the sender keep a deeper queue (webrtc_sctp S5) on long-RTT links
SOCKET_BUFFER = 4 * 1024 * 1024
#: remote ICE candidates one attempt uses, trickled (and, separately, inside the SDP): a real
#: peer has a few dozen at most; our server relays up to 200 per peer, a hostile one any number
MAX_REMOTE_CANDIDATES = 64


class CandidateBudget:
    """Admits the peer's first MAX_REMOTE_CANDIDATES well-formed candidates; the rest are
    dropped, with one verbose line for all of them (a flood must not flood the log either)."""

    def __init__(self, limit: int = MAX_REMOTE_CANDIDATES) -> None:
        self.limit = limit
        self.taken = 0
        self.dropped = 0

    def take(self) -> bool:
        if self.taken < self.limit:
            self.taken += 1
            return True
        self.drop("excess")
        return False

    def drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.debug("webrtc: ignoring %s ICE candidates from the peer (at most %d are used; "
                      "further ones are dropped silently)", why, self.limit)

    def trim_sdp(self, sdp: str) -> str:
        """The SDP with candidate lines beyond the budget removed."""
        lines = sdp.splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("a=candidate:") or self.take()]
        return sdp if len(kept) == len(lines) else "".join(kept)


def server_urls(server: Mapping[str, Any]) -> list[str]:
    urls = server.get("urls")
    if isinstance(urls, str):
        return [urls]
    if isinstance(urls, list | tuple):
        return [u for u in urls if isinstance(u, str)]
    return []


def rtc_ice_servers(servers: Sequence[Mapping[str, Any]]) -> list[RTCIceServer]:
    """`{"urls", "username"?, "credential"?}` dicts (client.md §4.2) as aiortc servers."""
    from aiortc import RTCIceServer

    result = []
    for server in servers:
        urls = server_urls(server)
        if not urls:
            continue
        username = server.get("username")
        credential = server.get("credential")
        result.append(
            RTCIceServer(
                urls=urls,
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return result


def parse_candidate(payload: Mapping[str, Any]) -> RTCIceCandidate | None:
    """A `candidate` payload as an aiortc candidate; None when empty or malformed.

    Accepts the browser/pion form "candidate:<foundation> ..." and the bare form.
    """
    from aiortc.sdp import candidate_from_sdp

    text = payload.get("candidate")
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    if not text:
        return None  # end-of-candidates marker: the attempt's timeout covers failure
    try:
        candidate = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError):
        return None  # the caller's CandidateBudget says so once
    mid = payload.get("sdpMid")
    index = payload.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    valid_index = isinstance(index, int) and not isinstance(index, bool) and index >= 0
    candidate.sdpMLineIndex = index if valid_index else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # our SDP has a single (data) m-line
    return candidate


def _ice_connection(sctp: Any) -> Any:
    return sctp.transport.transport._connection


def enlarge_socket_buffers(sctp: Any) -> int | None:
    """Ask for bigger UDP buffers on every gathered ICE socket (best effort); returns the
    smallest receive buffer granted (as getsockopt reports it), None when unknown."""
    try:
        protocols = list(_ice_connection(sctp)._protocols)
    except AttributeError:
        return None
    granted: list[int] = []
    for protocol in protocols:
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            continue
        _dont_fragment(sock)
        with contextlib.suppress(OSError):
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                if sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            granted.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return min(granted) if granted else None


def batch_socket_reads(sctp: Any) -> int:
    """Read every waiting datagram per wake-up on each gathered ICE socket (webrtc_udp);
    returns on how many sockets it is in place."""
    from sp2p.net.webrtc_udp import batch_reads

    try:
        protocols = list(_ice_connection(sctp)._protocols)
    except AttributeError:
        return 0
    return sum(batch_reads(protocol) for protocol in protocols)


def _dont_fragment(sock: socket.socket) -> None:
    """Never fragment our datagrams (Linux): a probe for larger SCTP packets (webrtc_sctp_mtu)
    must fail on a path with a smaller MTU instead of passing as IP fragments."""
    with contextlib.suppress(OSError, AttributeError):
        if sock.family == socket.AF_INET:
            # Linux's IP_MTU_DISCOVER = 10, IP_PMTUDISC_DO = 2 (typeshed lacks them)
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10),
                            getattr(socket, "IP_PMTUDISC_DO", 2))
        elif sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1)


def selected_pair_is_relay(sctp: Any) -> bool:
    """Whether the nominated ICE pair goes through a TURN relay on either end."""
    try:
        pairs = list(_ice_connection(sctp)._nominated.values())
    except AttributeError:
        return False
    for pair in pairs:
        with contextlib.suppress(AttributeError):
            if "relay" in (pair.local_candidate.type, pair.remote_candidate.type):
                return True
    return False

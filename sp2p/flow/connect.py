"""Establish the peer-to-peer channel (client.md §4.5): race the transports, confirm keys.

Signaling messages for the transports are routed here while the race runs; the
winner is whichever confirmed channel the key-confirmation race settles on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sp2p.errors import ConnectError, SignalingError
from sp2p.net.addresses import format_endpoint, local_addresses
from sp2p.net.channel import Channel
from sp2p.net.race import ConfirmationRace
from sp2p.net.signaling import SignalClient
from sp2p.net.tcp import TcpRace
from sp2p.proto.constants import Role, Transport
from sp2p.proto.keys import SessionKeys
from sp2p.proto.signal import ClientType, Direct, Envelope, SignalType

log = logging.getLogger(__name__)

ESTABLISH_TIMEOUT = 30.0
PREFER_TCP_WINDOW = 6.0
PEER_LEFT_GRACE = 3.0

_ROUTED = {
    SignalType.DIRECT,
    SignalType.OFFER,
    SignalType.ANSWER,
    SignalType.CANDIDATE,
    SignalType.CONNECTED,
    SignalType.PEER_LEFT,
    SignalType.ERROR,
}


@dataclass
class ConnectOptions:
    transport: Transport = Transport.AUTO
    allow_loopback: bool = False
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    prefer_tcp: bool = False
    timeout: float = ESTABLISH_TIMEOUT


@dataclass
class PeerInfo:
    client_type: str = ClientType.CLI
    prefer_tcp: bool = False
    parallel_tcp: bool = False

    @property
    def is_browser(self) -> bool:
        return self.client_type == ClientType.BROWSER


StatusFn = Callable[[str, str], None]  # (method, detail)


def establish(
    signal: SignalClient,
    keys: SessionKeys,
    peer: PeerInfo,
    opts: ConnectOptions,
    status: StatusFn = lambda m, d: None,
) -> Channel:
    """Return the confirmed channel or raise ConnectError / KeyConfirmationError / SignalingError."""
    race = ConfirmationRace(
        keys,
        # our receiver lets the peer choose; anyone facing a browser reads first (W26)
        read_first=keys.role is Role.RECEIVER or peer.is_browser,
        prefer_tcp_window=PREFER_TCP_WINDOW if opts.prefer_tcp and opts.transport is Transport.AUTO else 0.0,
    )
    tcp: TcpRace | None = None
    if opts.transport is Transport.WEBRTC:
        status("TCP", "skipped (transport=webrtc)")
    elif peer.is_browser:
        status("TCP", "skipped (peer is a browser)")
    else:
        tcp = TcpRace(keys.role, race.offer, allow_loopback=opts.allow_loopback)
        for addr in local_addresses(allow_loopback=opts.allow_loopback):
            signal.send(Envelope.build(SignalType.DIRECT, Direct(tcp=format_endpoint(addr, tcp.port))))
        status("TCP", f"listening on port {tcp.port}")
    if opts.transport is Transport.TCP:
        status("WebRTC", "skipped (transport=tcp)")
    try:
        deadline = time.monotonic() + opts.timeout
        while True:
            winner = race.poll()
            if winner is not None:
                status(winner.transport, "connected")
                return winner
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                env = signal.wait_for(_ROUTED, timeout=min(0.1, remaining))
            except TimeoutError:
                continue
            if env.type == SignalType.PEER_LEFT:
                # a peer that just confirmed on a channel closes its signaling at once (v2),
                # possibly before its MAC has reached us on that channel: give it a moment
                with contextlib.suppress(ConnectError):
                    return race.wait(timeout=PEER_LEFT_GRACE)
                raise ConnectError(
                    "the peer left before a connection was confirmed",
                    hint="if this keeps happening, check that both sides used the same code",
                )
            _route(env, tcp)
        race.wait(timeout=0)  # raises the right error: bad MAC seen, or nothing connected
        raise ConnectError("could not establish a peer-to-peer connection")
    finally:
        if tcp is not None:
            tcp.stop()
        race.close()


def _route(env: Envelope, tcp: TcpRace | None) -> None:
    if env.type == SignalType.ERROR:
        raise SignalingError(f"server error: {str(env.payload.get('message', ''))[:200]}")
    if env.type == SignalType.DIRECT and tcp is not None:
        text = env.payload.get("tcp")
        if isinstance(text, str) and text:
            tcp.add_peer_address(text)

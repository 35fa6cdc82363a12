"""Establish the peer-to-peer channel (client.md §4.5): race the transports, confirm keys.

Signaling messages for the transports are routed here while the race runs; the
winner is whichever confirmed channel the key-confirmation race settles on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from sp2p.errors import ConnectError, PeerCancelled
from sp2p.flow.race_legs import UpnpAttempt, WebRTCAttempt, keep_mapping
from sp2p.flow.session import server_error
from sp2p.log import get_logger
from sp2p.net.addresses import format_endpoint, local_addresses
from sp2p.net.channel import Channel
from sp2p.net.race import ConfirmationRace
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.net.tcp import TcpRace
from sp2p.proto.constants import Role, Transport
from sp2p.proto.keys import SessionKeys
from sp2p.proto.signal import ClientType, Direct, Envelope, SignalType
from sp2p.record import field, record

log = get_logger(__name__)

ESTABLISH_TIMEOUT = 30.0
PREFER_TCP_WINDOW = 6.0
PEER_LEFT_GRACE = 3.0
#: in `auto`, the offerer gives TCP this long before it loads aiortc (~0.3 s of CPU that holds
#: the GIL against the TCP handshake threads); a TCP win within it never loads WebRTC at all
WEBRTC_HEAD_START = 0.15

_WEBRTC_TYPES = frozenset({SignalType.OFFER, SignalType.ANSWER, SignalType.CANDIDATE, SignalType.CONNECTED})
#: messages of a connection race; what is left of an earlier race must not reach the next one
RACE_TYPES = frozenset({SignalType.DIRECT, *_WEBRTC_TYPES})
_ROUTED = RACE_TYPES | {SignalType.PEER_LEFT, SignalType.ERROR}


#: a CLI peer that leaves with less than this share of our attempt left gave up as we are about
#: to: both attempts last as long (client.md: 30 s) and start within moments of each other
GAVE_UP_SHARE = 0.2


class PeerLeftError(ConnectError):
    """The peer left the session: no point in a relay retry."""


class PeerWentAway(PeerCancelled, PeerLeftError):
    """The peer left long before its attempt could have timed out: interrupted or stopped, so
    it ends us as a cancelled transfer does (exit 6), not as a missing path (exit 4)."""


@record()
class ConnectOptions:
    transport: Transport = Transport.AUTO
    allow_loopback: bool = False
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    prefer_tcp: bool = False
    timeout: float = ESTABLISH_TIMEOUT
    #: TURN servers for the relay retry
    extra_ice_servers: list[dict[str, Any]] = field(default_factory=list)
    #: a TCP winner keeps the race's listener open for parallel-TCP secondaries
    keep_listener: bool = False


@record()
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
    stop: Callable[[], bool] | None = None,
) -> Channel:
    """Return the confirmed channel or raise ConnectError / KeyConfirmationError / SignalingError.

    `stop` is polled while waiting; True ends the attempt early with ConnectError (relay.py:
    the peer's relay-retry says it has given up on this attempt).
    """
    race = ConfirmationRace(
        keys,
        # our receiver lets the peer choose; anyone facing a browser reads first (W26)
        read_first=keys.role is Role.RECEIVER or peer.is_browser,
        prefer_tcp_window=prefer_tcp_window(opts, peer),
        on_settled=signal.interrupt,  # the loop below wakes at once, not at its next poll
    )
    tcp: TcpRace | None = None
    upnp: UpnpAttempt | None = None
    if opts.transport is Transport.WEBRTC:
        status("TCP", "skipped (transport=webrtc)")
    elif peer.is_browser:
        status("TCP", "skipped (peer is a browser)")
    else:
        tcp = TcpRace(keys.role, race.offer, allow_loopback=opts.allow_loopback)
        for addr in local_addresses(allow_loopback=opts.allow_loopback):
            signal.send(Envelope.build(SignalType.DIRECT, Direct(tcp=format_endpoint(addr, tcp.port))))
        status("TCP", f"listening on port {tcp.port}")
        if opts.allow_loopback:  # dev/test mode on one host: keep SSDP off the real LAN
            status("TCP", "UPnP skipped (loopback mode)")
        else:
            upnp = UpnpAttempt(tcp.port, signal, race, status)
    rtc: WebRTCAttempt | None = None
    if opts.transport is Transport.TCP:
        status("WebRTC", "skipped (transport=tcp)")
    else:
        # The answerer has nothing to do before an offer comes; the offerer lets TCP go first
        # when TCP races too. Without TCP, WebRTC starts (and aiortc loads) at once.
        rtc = WebRTCAttempt(
            signal, keys.role, peer, opts, race, status,
            start_after=None if tcp is None else (WEBRTC_HEAD_START if keys.role is Role.SENDER else -1.0),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + opts.timeout
        while True:
            winner = race.poll()
            if winner is not None:
                status(winner.transport, "connected")
                return keep_mapping(winner, upnp)
            if stop is not None and stop():
                if (late := _late_verdict(race, upnp)) is not None:
                    return late
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                env = signal.wait_for(_ROUTED, timeout=min(0.1, remaining))
            except TimeoutError:
                continue
            except SignalClosed:
                # a peer that exits right after its MAC (or after our MAC failed on its side)
                # can close the session before that MAC is read here: its verdict comes first
                if (late := _late_verdict(race, upnp)) is not None:
                    return late
                raise
            if env.type == SignalType.PEER_LEFT:
                remaining = deadline - time.monotonic()  # when it left, not after the grace below
                # a peer that just confirmed on a channel closes its signaling at once (v2),
                # possibly before its MAC has reached us on that channel: give it a moment
                with contextlib.suppress(ConnectError):
                    return keep_mapping(race.wait(timeout=PEER_LEFT_GRACE), upnp)
                raise _peer_left(keys.role, remaining, opts.timeout, browser=peer.is_browser)
            _route(env, tcp, rtc)
        race.wait(timeout=0)  # raises the right error: bad MAC seen, or nothing connected
        raise ConnectError("could not establish a peer-to-peer connection")
    finally:
        if tcp is not None:
            _stop_tcp(tcp, race.poll_quiet(), opts.keep_listener)
        if upnp is not None:
            upnp.release()  # a no-op once the winner took the mapping over
        race.close()
        if rtc is not None:
            rtc.release_unless_won(race.poll_quiet())


def prefer_tcp_window(opts: ConnectOptions, peer: PeerInfo) -> float:
    """How long a confirmed WebRTC channel is held so that TCP may still win: only where TCP
    races beside it. Facing a browser (no TCP leg) the hold only delayed every CLI -> browser
    transfer of PREFER_TCP_THRESHOLD or more by the whole window."""
    races_tcp = opts.transport is Transport.AUTO and not peer.is_browser
    return PREFER_TCP_WINDOW if opts.prefer_tcp and races_tcp else 0.0


def _peer_left(role: Role, remaining: float, timeout: float, *, browser: bool) -> PeerLeftError:
    """A wrong code never ends here: both sides see the other's MAC and say so (exit 5). A
    browser gives up on its own, shorter clock (static/js/webrtc.js; sooner once ICE fails), so
    its leaving early is no sign that anyone stopped it."""
    peer = Role.RECEIVER if role is Role.SENDER else Role.SENDER
    if browser:
        return PeerLeftError(f"could not establish a peer-to-peer connection (the {peer}'s browser gave up)")
    if remaining > timeout * GAVE_UP_SHARE:
        return PeerWentAway(f"the {peer} left while the two sides were connecting")
    return PeerLeftError(f"could not establish a peer-to-peer connection (the {peer} gave up too)")


def _late_verdict(race: ConfirmationRace, upnp: UpnpAttempt | None) -> Channel | None:
    """The race is being given up: a candidate still mid-confirmation gets PEER_LEFT_GRACE to
    finish. Its winner, or None; a wrong MAC raises KeyConfirmationError (a security failure
    must not read as a lost server or a stopped attempt)."""
    if not race.confirming and not race.bad_mac_seen:
        return None
    with contextlib.suppress(ConnectError):
        return keep_mapping(race.wait(timeout=PEER_LEFT_GRACE), upnp)
    return None


def _stop_tcp(tcp: TcpRace, winner: Channel | None, keep_listener: bool) -> None:
    host = winner.parallel_tcp() if keep_listener and winner is not None else None
    if host is not None:
        host.adopt_listener(tcp.detach_listener())
    else:
        tcp.stop()


def _route(env: Envelope, tcp: TcpRace | None, rtc: WebRTCAttempt | None) -> None:
    if env.type in _WEBRTC_TYPES:
        if rtc is not None:
            rtc.handle_signal(env.type, env.payload)
        return
    if env.type == SignalType.ERROR:
        raise server_error(env)
    if env.type == SignalType.DIRECT and tcp is not None:
        text = env.payload.get("tcp")
        if isinstance(text, str) and text:
            tcp.add_peer_address(text)


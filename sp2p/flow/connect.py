"""Establish the peer-to-peer channel (client.md §4.5): race the transports, confirm keys.

Signaling messages for the transports are routed here while the race runs; the
winner is whichever confirmed channel the key-confirmation race settles on.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sp2p.errors import ConnectError, SignalingError
from sp2p.flow.session import server_error
from sp2p.net.addresses import format_endpoint, local_addresses
from sp2p.net.channel import Channel, Outgoing, ParallelTcpHost, TransportKind
from sp2p.net.race import ConfirmationRace
from sp2p.net.signaling import SignalClient
from sp2p.net.tcp import TcpRace
from sp2p.net.upnp import UpnpError, UpnpMapping
from sp2p.proto.constants import Role, Transport
from sp2p.proto.keys import SessionKeys
from sp2p.proto.signal import ClientType, Direct, Envelope, SignalType

log = logging.getLogger(__name__)

ESTABLISH_TIMEOUT = 30.0
UPNP_TIMEOUT = 5.0
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


class PeerLeftError(ConnectError):
    """The peer left the session: no point in a relay retry."""


@dataclass
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
        prefer_tcp_window=PREFER_TCP_WINDOW if opts.prefer_tcp and opts.transport is Transport.AUTO else 0.0,
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
        rtc = WebRTCAttempt(signal, keys.role, peer, opts, race, status)
    try:
        deadline = time.monotonic() + opts.timeout
        while True:
            winner = race.poll()
            if winner is not None:
                status(winner.transport, "connected")
                return _keep_mapping(winner, upnp)
            if stop is not None and stop():
                break
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
                    return _keep_mapping(race.wait(timeout=PEER_LEFT_GRACE), upnp)
                raise PeerLeftError(
                    "the peer left before a connection was confirmed",
                    hint="if this keeps happening, check that both sides used the same code",
                )
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


def _stop_tcp(tcp: TcpRace, winner: Channel | None, keep_listener: bool) -> None:
    host = winner.parallel_tcp() if keep_listener and winner is not None else None
    if host is not None:
        host.adopt_listener(tcp.detach_listener())
    else:
        tcp.stop()


def _route(env: Envelope, tcp: TcpRace | None, rtc: WebRTCAttempt | None) -> None:
    if env.type in _WEBRTC_TYPES:
        if rtc is not None:
            rtc.peer.handle_signal(env.type, env.payload)
        return
    if env.type == SignalType.ERROR:
        raise server_error(env)
    if env.type == SignalType.DIRECT and tcp is not None:
        text = env.payload.get("tcp")
        if isinstance(text, str) and text:
            tcp.add_peer_address(text)


_WEBRTC_TYPES = {SignalType.OFFER, SignalType.ANSWER, SignalType.CANDIDATE, SignalType.CONNECTED}


class UpnpAttempt:
    """Map the TCP listener's port on the gateway in the background (client.md §4.6 step 3, §4.7).

    Never fails the connection: a missing or refusing gateway only shows as a status.
    """

    def __init__(self, port: int, signal: SignalClient, race: ConfirmationRace, status: StatusFn) -> None:
        self._port = port
        self._signal = signal
        self._race = race
        self._status = status
        self._lock = threading.Lock()
        self._released = False
        self._mapping: UpnpMapping | None = None
        threading.Thread(target=self._run, name="sp2p-upnp", daemon=True).start()

    def _run(self) -> None:
        try:
            mapping = UpnpMapping.create(self._port, timeout=UPNP_TIMEOUT)
        except UpnpError as exc:
            self._status("TCP", f"UPnP failed: {exc}")
            return
        except Exception as exc:  # a broken gateway must never break the transfer
            self._status("TCP", f"UPnP failed: {exc}")
            return
        if mapping is None:
            self._status("TCP", "UPnP: no gateway found")
            return
        with self._lock:
            if self._released:  # the race is over: do not leave a hole in the gateway
                _close_in_background(mapping)
                return
            self._mapping = mapping
        atexit.register(mapping.close)  # also on Ctrl-C / SIGTERM (mapped to KeyboardInterrupt)
        _send_quietly(self._signal, SignalType.DIRECT, Direct(tcp=mapping.external_address).to_payload())
        self._status("TCP", f"UPnP mapped {mapping.external_address}")
        self._race.restart_prefer_window()

    def take(self) -> UpnpMapping | None:
        """Hand the mapping over to the caller (who must close it); later mappings are dropped."""
        with self._lock:
            self._released = True
            mapping, self._mapping = self._mapping, None
        return mapping

    def release(self) -> None:
        mapping = self.take()
        if mapping is not None:
            _close_in_background(mapping)


def _close_in_background(mapping: UpnpMapping) -> None:
    threading.Thread(target=mapping.close, name="sp2p-upnp-close", daemon=True).start()


class _OwningChannel:
    """The winning channel plus what it owns (a UPnP mapping, a peer connection), released on close."""

    def __init__(self, inner: Channel, release: Callable[[], None]) -> None:
        self.inner = inner
        self._release = release
        self.transport = inner.transport

    def parallel_tcp(self) -> ParallelTcpHost | None:
        return self.inner.parallel_tcp()

    def send(self, data: Outgoing) -> None:
        self.inner.send(data)

    def recv(self, timeout: float | None = None) -> bytes:
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()
        self._release()

    @property
    def buffered_amount(self) -> int:
        return self.inner.buffered_amount


def _keep_mapping(winner: Channel, upnp: UpnpAttempt | None) -> Channel:
    if upnp is None or winner.transport is not TransportKind.TCP:
        return winner
    mapping = upnp.take()
    if mapping is None:
        return winner

    def release() -> None:  # the mapping lives until the transfer ends (client.md §4.7)
        mapping.close()
        atexit.unregister(mapping.close)

    return _OwningChannel(winner, release)


class WebRTCAttempt:
    """One WebRTC leg of the race: the sender offers, the receiver answers (client.md §4.8)."""

    def __init__(
        self,
        signal: SignalClient,
        role: Role,
        peer: PeerInfo,
        opts: ConnectOptions,
        race: ConfirmationRace,
        status: StatusFn,
    ) -> None:
        from sp2p.net.webrtc import WebRTCPeer  # aiortc loads only when WebRTC is used

        stun = [s for s in opts.ice_servers if not _is_turn(s)]
        self.peer = WebRTCPeer(
            offerer=role is Role.SENDER,
            send_signal=lambda t, p: _send_quietly(signal, t, p),
            ice_servers=stun + opts.extra_ice_servers,
            peer_is_browser=peer.is_browser,
            on_status=lambda text: status("WebRTC", text),
        )
        self._race = race
        self._channel: Channel | None = None
        self.peer.start()
        threading.Thread(target=self._wait, args=(opts.timeout, status), name="sp2p-webrtc-wait",
                         daemon=True).start()

    def _wait(self, timeout: float, status: StatusFn) -> None:
        try:
            stream = self.peer.wait_open(timeout)
        except ConnectError as exc:
            status("WebRTC", f"failed: {exc}")
            return
        self._channel = _OwningChannel(stream, self.peer.close)  # closing tears the peer down
        self._race.offer(self._channel)

    def release_unless_won(self, winner: Channel | None) -> None:
        if winner is None or winner is not self._channel:
            threading.Thread(target=self.peer.close, name="sp2p-webrtc-close", daemon=True).start()


def _is_turn(server: dict[str, Any]) -> bool:
    urls = server.get("urls") or []
    return any(str(u).startswith(("turn:", "turns:")) for u in urls)


def _send_quietly(signal: SignalClient, msg_type: str, payload: dict[str, Any]) -> None:
    with contextlib.suppress(SignalingError):
        signal.send(Envelope(msg_type, payload))

"""The legs of `establish`'s race that run on their own threads (client.md §4.5): the UPnP
mapping of the TCP listener's port, and the WebRTC attempt. Kept apart from sp2p.flow.connect,
which runs the race and routes the signaling messages to them."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sp2p.errors import ConnectError, SignalingError
from sp2p.net.channel import Channel, ChannelWrapper, TransportKind
from sp2p.net.race import ConfirmationRace
from sp2p.net.signaling import SignalClient
from sp2p.net.upnp import UpnpError, UpnpMapping
from sp2p.proto.constants import Role
from sp2p.proto.signal import Direct, Envelope, SignalType

if TYPE_CHECKING:
    from sp2p.flow.connect import ConnectOptions, PeerInfo, StatusFn
    from sp2p.net.webrtc import WebRTCPeer

UPNP_TIMEOUT = 5.0


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


class OwningChannel(ChannelWrapper):
    """The winning channel plus what it owns (a UPnP mapping, a peer connection), released on close."""

    def __init__(self, inner: Channel, release: Callable[[], None]) -> None:
        super().__init__(inner)
        self._release = release

    def close(self) -> None:
        self.inner.close()
        self._release()


def keep_mapping(winner: Channel, upnp: UpnpAttempt | None) -> Channel:
    if upnp is None or winner.transport is not TransportKind.TCP:
        return winner
    mapping = upnp.take()
    if mapping is None:
        return winner

    def release() -> None:  # the mapping lives until the transfer ends (client.md §4.7)
        mapping.close()
        atexit.unregister(mapping.close)

    return OwningChannel(winner, release)


class WebRTCAttempt:
    """One WebRTC leg of the race: the sender offers, the receiver answers (client.md §4.8).

    aiortc loads on the attempt's own thread, never on the caller's, and only once the attempt
    starts: at once (`start_after` None), after a head start for TCP (seconds), or when the
    peer's first WebRTC message arrives (negative). Messages that come before are kept.
    """

    def __init__(
        self,
        signal: SignalClient,
        role: Role,
        peer: PeerInfo,
        opts: ConnectOptions,
        race: ConfirmationRace,
        status: StatusFn,
        *,
        start_after: float | None = None,
    ) -> None:
        self._signal = signal
        self._role = role
        self._peer_info = peer
        self._opts = opts
        self._race = race
        self._status = status
        self._lock = threading.Lock()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._peer: WebRTCPeer | None = None
        self._released = False
        self._go = threading.Event()
        self._channel: Channel | None = None
        self._started = False
        if start_after is None or start_after >= 0:
            self._start(start_after or 0.0)

    def _start(self, delay: float) -> None:
        self._started = True
        threading.Thread(target=self._run, args=(delay,), name="sp2p-webrtc-wait", daemon=True).start()

    def handle_signal(self, msg_type: str, payload: dict[str, Any]) -> None:
        with self._lock:
            peer = self._peer
            if peer is None:
                self._pending.append((msg_type, payload))
                if not self._started:
                    self._start(0.0)
                else:
                    self._go.set()  # the peer is already trying WebRTC: no more head start
                return
        peer.handle_signal(msg_type, payload)

    def _run(self, delay: float) -> None:
        if delay > 0:
            self._go.wait(delay)
        with self._lock:
            if self._released:
                return  # another transport won first: aiortc never loads
        from sp2p.net.webrtc import WebRTCPeer  # aiortc loads (on its loop thread) only from here

        opts, status = self._opts, self._status
        stun = [s for s in opts.ice_servers if not _is_turn(s)]
        peer = WebRTCPeer(
            offerer=self._role is Role.SENDER,
            send_signal=lambda t, p: _send_quietly(self._signal, t, p),
            ice_servers=stun + opts.extra_ice_servers,
            peer_is_browser=self._peer_info.is_browser,
            on_status=lambda text: status("WebRTC", text),
        )
        with self._lock:
            if self._released:
                released = True
            else:
                released = False
                for msg_type, payload in self._pending:  # in order, before any later message
                    peer.handle_signal(msg_type, payload)
                self._pending.clear()
                self._peer = peer
        if released:
            peer.close()
            return
        peer.start()
        try:
            stream = peer.wait_open(opts.timeout)
        except ConnectError as exc:
            status("WebRTC", f"failed: {exc}")
            return
        self._channel = OwningChannel(stream, peer.close)  # closing tears the peer down
        self._race.offer(self._channel)

    def release_unless_won(self, winner: Channel | None) -> None:
        with self._lock:
            self._released = True
            peer = self._peer
        self._go.set()
        if peer is not None and (winner is None or winner is not self._channel):
            threading.Thread(target=peer.close, name="sp2p-webrtc-close", daemon=True).start()


def _is_turn(server: dict[str, Any]) -> bool:
    urls = server.get("urls") or []
    return any(str(u).startswith(("turn:", "turns:")) for u in urls)


def _send_quietly(signal: SignalClient, msg_type: str, payload: dict[str, Any]) -> None:
    with contextlib.suppress(SignalingError):
        signal.send(Envelope(msg_type, payload))

"""WebRTC data-channel transport (client.md §4.8): the only module that imports aiortc.

aiortc (and PyAV under it) is imported inside functions, so `import sp2p.net.webrtc`
stays cheap and `--help`, `--version` and the server never load it.

`WebRTCPeer` knows nothing about the WebSocket: it emits signaling messages through
`send_signal(type, payload)` and is fed the peer's with `handle_signal(type, payload)`,
using the wire names and payload fields of client.md §4.2 (`offer`/`answer`
{"sdp","type"}, `candidate` {"candidate","sdpMid","sdpMLineIndex"}, `connected` {}).
The sender is always the offerer and creates the data channel (label `sp2p`, ordered,
reliable). aiortc gathers all local candidates before it returns a description, so
ours travel inside the SDP; the peer's trickled candidates are applied as they come
(buffered until its description is known).

Usage (any thread):
    peer = WebRTCPeer(offerer=True, send_signal=ws_send, ice_servers=[{"urls": [...]}])
    peer.start()
    ... signaling reader: peer.handle_signal(msg.type, msg.payload)
    channel = peer.wait_open(timeout=30)   # Channel, or raises ConnectError
    ...
    channel.close()                        # or peer.close(); both idempotent
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sp2p.errors import ConnectError
from sp2p.net import webrtc_sctp as sctp_tuning
from sp2p.net.loop import LoopClosed, LoopThread
from sp2p.net.webrtc_channel import DataChannelStream
from sp2p.net.webrtc_ice import (
    CandidateBudget,
    batch_socket_reads,
    enlarge_socket_buffers,
    parse_candidate,
    rtc_ice_servers,
    selected_pair_is_relay,
    server_urls,
)
from sp2p.proto.signal import Sdp, SignalType

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription

log = logging.getLogger(__name__)

SignalSender = Callable[[str, dict[str, Any]], None]
StatusCallback = Callable[[str], None]

#: the signals a WebRTC peer consumes; the rest of the session's are not its business
_PEER_SIGNALS = frozenset({SignalType.OFFER, SignalType.ANSWER, SignalType.CANDIDATE, SignalType.CONNECTED})

#: data channel label used by every sp2p implementation
CHANNEL_LABEL = "sp2p"
#: how long close() waits for sent data to be acknowledged before tearing down
DRAIN_TIMEOUT = 3.0
_DRAIN_POLL = 0.02


class WebRTCPeer:
    """One side of a WebRTC connection carrying one `sp2p` data channel."""

    def __init__(
        self,
        *,
        offerer: bool,
        send_signal: SignalSender,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        peer_is_browser: bool = False,
        on_status: StatusCallback | None = None,
        loop: LoopThread | None = None,
        relay_only: bool = False,
    ) -> None:
        """
        Args:
            offerer: True on the sending side (it creates the offer and the channel).
            send_signal: called with (type, payload) for every message to relay to the peer.
                Called from a private thread, in order; must not raise.
            ice_servers: `{"urls": [...], "username"?, "credential"?}` dicts (STUN, and TURN
                for the relay retry). Empty: host candidates only.
            peer_is_browser: the peer is the web UI (status texts; a smaller SCTP queue target,
                see webrtc_sctp S5).
            on_status: receives short UI details ("STUN gathering...", "connected", ...),
                from the same private thread as send_signal.
            loop: the aiortc loop thread to use; by default the peer runs its own.
            relay_only: gather TURN relay candidates only (tests; hiding local addresses).
        """
        self._offerer = offerer
        self._send_signal = send_signal
        self._ice_servers = [dict(s) for s in ice_servers]
        self._peer_is_browser = peer_is_browser
        self._on_status = on_status
        self._relay_only = relay_only
        self._owns_loop = loop is None
        self._loop = loop if loop is not None else LoopThread(name="sp2p-webrtc")
        # Notifications leave the loop thread through one worker, so a slow WebSocket
        # write or UI callback never stalls aiortc, and their order is kept.
        self._notifier = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sp2p-signal")
        self._opened: concurrent.futures.Future[DataChannelStream] = concurrent.futures.Future()
        self._started = False
        self._closed = False
        # loop-thread state
        self._inbox: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._inbox_ready = asyncio.Event()
        self._pc: RTCPeerConnection | None = None
        self._remote_set = False
        self._early_candidates: list[RTCIceCandidate] = []
        self._candidates = CandidateBudget()
        self._stream: DataChannelStream | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- public API (any thread but the loop's) ----------------------------------------

    def start(self) -> None:
        """Begin: the offerer gathers candidates and sends its offer; the answerer waits."""
        if self._closed:
            raise ConnectError("WebRTC peer already closed")
        if self._started:
            return
        self._started = True
        self._loop.call_soon(self._begin)

    def handle_signal(self, type: str, payload: Mapping[str, Any]) -> None:
        """Feed one signaling message from the peer; thread-safe, may come before start()."""
        if type in _PEER_SIGNALS:
            self._loop.call_soon(self._enqueue, type, dict(payload))

    def wait_open(self, timeout: float | None = None) -> DataChannelStream:
        """Block until the data channel is open; raises ConnectError on failure or timeout."""
        try:
            return self._opened.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ConnectError(f"WebRTC connection not established within {timeout:g} s") from None
        except concurrent.futures.CancelledError:
            raise ConnectError("WebRTC attempt cancelled") from None

    def close(self) -> None:
        """Close the channel and the peer connection (after a bounded flush). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(LoopClosed, TimeoutError, RuntimeError):
            self._loop.call(self._shutdown(), timeout=DRAIN_TIMEOUT + 5.0)
        if not self._opened.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self._opened.set_exception(ConnectError("WebRTC attempt closed"))
        self._notifier.shutdown(wait=False)
        if self._owns_loop:
            self._loop.stop()

    # -- notifications (run on the notifier thread) ----------------------------------

    def _signal(self, type: str, payload: dict[str, Any]) -> None:
        def deliver() -> None:
            try:
                self._send_signal(type, payload)
            except Exception:
                log.exception("sending %s signal failed", type)

        self._notify(deliver)

    def _status(self, text: str) -> None:
        log.debug("webrtc: %s", text)
        callback = self._on_status
        if callback is None:
            return

        def deliver() -> None:
            try:
                callback(text)
            except Exception:
                log.exception("status callback failed")

        self._notify(deliver)

    def _notify(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # executor shut down: nobody listens
            self._notifier.submit(fn)

    # -- loop thread ---------------------------------------------------------------

    def _enqueue(self, type: str, payload: dict[str, Any]) -> None:
        self._inbox.append((type, payload))
        self._inbox_ready.set()

    def _begin(self) -> None:
        if self._closed:
            return
        self._worker = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._setup()
            while not self._closed:
                while self._inbox:
                    await self._process(*self._inbox.popleft())
                self._inbox_ready.clear()
                await self._inbox_ready.wait()
        except asyncio.CancelledError:
            raise
        except ConnectError as exc:
            await self._fail(exc)
        except Exception as exc:
            log.debug("WebRTC setup failed", exc_info=True)
            await self._fail(ConnectError(f"WebRTC setup failed: {exc}"))

    async def _setup(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        sctp_tuning.apply()
        policy = RTCIceTransportPolicy.RELAY if self._relay_only else RTCIceTransportPolicy.ALL
        config = RTCConfiguration(iceServers=rtc_ice_servers(self._ice_servers), iceTransportPolicy=policy)
        pc = RTCPeerConnection(config)
        self._pc = pc
        pc.on("connectionstatechange", self._on_connection_state)
        pc.on("iceconnectionstatechange", self._on_ice_state)
        if not self._offerer:
            pc.on("datachannel", self._on_datachannel)
            self._status("waiting for offer")
            return
        channel = pc.createDataChannel(CHANNEL_LABEL, ordered=True)
        # RFC 8832 lets the peer send right after our DATA_CHANNEL_OPEN, and Firefox's first
        # message can overtake its DATA_CHANNEL_ACK; aiortc hands it out while the channel is
        # still "connecting", before "open" attaches the stream, so keep it for the stream.
        early: list[bytes | str] = []
        channel.on("message", lambda m: early.append(m) if self._stream is None else None)
        channel.on("open", lambda: self._on_open(channel, early))
        if pc.sctp is not None:
            sctp_tuning.set_receive_window(pc.sctp)
        self._status(self._gathering_text())
        await pc.setLocalDescription(await pc.createOffer())
        desc = self._gathered(pc)
        self._signal(SignalType.OFFER, Sdp(desc.sdp, desc.type).to_payload())
        self._status("offer sent, waiting for answer")

    async def _process(self, type: str, payload: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        pc = self._pc
        if pc is None or self._closed:
            return
        if type == SignalType.CANDIDATE:
            candidate = parse_candidate(payload)
            if candidate is None:
                if payload.get("candidate"):  # not the empty end-of-candidates marker
                    self._candidates.drop("malformed or excess")
                return
            if not self._candidates.take():
                return
            if self._remote_set:
                await _add_candidate(pc, candidate)
            else:
                self._early_candidates.append(candidate)
            return
        if type == SignalType.CONNECTED:
            self._status("peer reports its data channel open")
            return
        expected = SignalType.ANSWER if self._offerer else SignalType.OFFER
        if type != expected or self._remote_set:
            log.debug("ignoring unexpected %s signal", type)
            return
        sdp = payload.get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise ConnectError(f"peer sent an {type} without SDP")
        if "m=application" not in sdp:  # aiortc would accept it and then wait forever
            raise ConnectError(f"peer sent an invalid {type}: no data channel section")
        sdp = CandidateBudget().trim_sdp(sdp)  # its own budget: trickled junk must not crowd it out
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type))
        except ValueError as exc:
            raise ConnectError(f"peer sent an invalid {type}: {exc}") from exc
        self._remote_set = True
        for candidate in self._early_candidates:
            await _add_candidate(pc, candidate)
        self._early_candidates.clear()
        if self._offerer:
            self._status("answer received, connecting")
            return
        if pc.sctp is not None:
            sctp_tuning.set_receive_window(pc.sctp)
        self._status(self._gathering_text())
        await pc.setLocalDescription(await pc.createAnswer())
        desc = self._gathered(pc)
        self._signal(SignalType.ANSWER, Sdp(desc.sdp, desc.type).to_payload())
        self._status("answer sent, connecting")

    def _gathered(self, pc: RTCPeerConnection) -> RTCSessionDescription:
        """The local description once gathering is done; fails when it found nothing."""
        desc = pc.localDescription
        if "a=candidate:" not in desc.sdp:
            # aiortc reports a failed TURN allocation (bad credentials, unreachable
            # server) only by gathering nothing; ICE would then wait forever.
            turn = any(u.startswith(("turn:", "turns:")) for u in self._urls())
            hint = " (TURN allocation failed?)" if turn else ""
            raise ConnectError(f"no ICE candidates gathered{hint}")
        if pc.sctp is not None:
            granted = enlarge_socket_buffers(pc.sctp)
            sctp_tuning.set_peer(pc.sctp, browser=self._peer_is_browser, receive_buffer=granted)
            if sctp_tuning.active():
                batch_socket_reads(pc.sctp)
        return desc

    def _urls(self) -> list[str]:
        return [u for s in self._ice_servers for u in server_urls(s)]

    def _gathering_text(self) -> str:
        urls = self._urls()
        if any(u.startswith(("turn:", "turns:")) for u in urls):
            return "TURN allocation..."
        if any(u.startswith("stun:") for u in urls):
            return "STUN gathering..."
        return "gathering candidates..."

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL:
            log.debug("peer opened data channel %r (expected %r)", channel.label, CHANNEL_LABEL)
        if channel.readyState == "open":
            self._on_open(channel)
        else:
            channel.on("open", lambda: self._on_open(channel))

    def _on_open(self, channel: RTCDataChannel, early: Sequence[bytes | str] = ()) -> None:
        pc = self._pc
        if self._stream is not None or pc is None or pc.sctp is None or self._closed:
            return
        relay = selected_pair_is_relay(pc.sctp)
        self._stream = DataChannelStream(self._loop, channel, relay=relay, on_close=self.close, early=early)
        self._signal(SignalType.CONNECTED, {})
        peer = "browser" if self._peer_is_browser else "peer"
        self._status(f"connected to {peer} via relay" if relay else "connected")
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            self._opened.set_result(self._stream)

    def _on_ice_state(self) -> None:
        pc = self._pc
        if pc is not None and pc.iceConnectionState == "checking":
            self._status("ICE checking...")

    def _on_connection_state(self) -> None:
        pc = self._pc
        if pc is None:
            return
        state = pc.connectionState
        log.debug("WebRTC connection state: %s", state)
        if state == "failed":
            # aiortc has no transient "disconnected" state: failed is final (consent lost).
            asyncio.ensure_future(self._fail(ConnectError("WebRTC connection failed (ICE)")))
        elif state == "closed" and not self._closed:
            asyncio.ensure_future(self._fail(ConnectError("WebRTC connection closed")))

    async def _fail(self, error: ConnectError) -> None:
        if self._stream is not None:
            self._stream.fail(error.message)
        elif not self._opened.done():
            self._status(f"failed: {error.message}")
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self._opened.set_exception(error)
        if self._pc is not None:
            await self._pc.close()

    async def _shutdown(self) -> None:
        worker = self._worker
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        pc = self._pc
        if pc is None:
            return
        if self._stream is not None and pc.sctp is not None and pc.connectionState == "connected":
            await _drain(self._stream, pc.sctp)
        await pc.close()


async def _drain(stream: DataChannelStream, sctp: Any) -> None:
    """Wait (bounded) until everything sent was acknowledged, so close loses nothing."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        if stream.buffered_amount == 0 and sctp_tuning.outbound_idle(sctp):
            return
        await asyncio.sleep(_DRAIN_POLL)
    log.debug("closing with unacknowledged data after %.1f s", DRAIN_TIMEOUT)


async def _add_candidate(pc: RTCPeerConnection, candidate: RTCIceCandidate) -> None:
    try:
        await pc.addIceCandidate(candidate)
    except Exception:  # a bad remote candidate must not end the attempt
        log.debug("ignoring remote candidate %r", candidate, exc_info=True)

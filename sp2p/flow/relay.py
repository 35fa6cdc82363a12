"""TURN relay fallback with consent (client.md §4.9, server-web.md §3).

When the direct attempt fails, both peers ask the server for TURN credentials
(`relay-retry`, which the server also relays to the peer), each asks its user,
and both retry WebRTC-only with the TURN servers once the peer agreed too.
A peer's relay-retry that arrives while our first attempt still runs means it has
given up on that attempt, so ours ends at once instead of running out its 30 s
(client.md §4.4 step 5; a browser peer gives up after 15 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sp2p.errors import ConnectError
from sp2p.flow.connect import ConnectOptions, PeerInfo, PeerLeftError, StatusFn, establish
from sp2p.flow.session import server_error
from sp2p.log import get_logger
from sp2p.net.channel import Channel
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.constants import Transport
from sp2p.proto.keys import SessionKeys
from sp2p.proto.signal import Envelope, SignalFormatError, SignalType, TurnCredentials
from sp2p.record import replace

log = get_logger(__name__)

CREDENTIALS_TIMEOUT = 30.0
AGREEMENT_TIMEOUT = 30.0
RETRY_PAUSE = 0.5

# the peer's first-attempt messages that may still sit in the mailbox, ahead of its relay-retry
_STALE = {
    SignalType.OFFER, SignalType.ANSWER, SignalType.CANDIDATE, SignalType.CONNECTED, SignalType.DIRECT,
}

_ENDING = {SignalType.RELAY_DENIED, SignalType.PEER_LEFT, SignalType.ERROR}
_CREDENTIALS = {SignalType.TURN_CREDENTIALS, *_ENDING}
_AGREEMENT = {SignalType.RELAY_RETRY, *_ENDING, *_STALE}

#: asks the user whether the data may cross a TURN relay (the CLI asks on its terminal)
ConsentFn = Callable[[], bool]


def never() -> bool:
    """No one to ask: the relay needs -allow-relay."""
    return False


def establish_or_relay(
    signal: SignalClient,
    keys: SessionKeys,
    peer: PeerInfo,
    opts: ConnectOptions,
    *,
    turn_available: bool,
    allow_relay: bool,
    status: StatusFn = lambda m, d: None,
    notice: Callable[[str], None] = lambda text: None,
    consent: ConsentFn = never,
) -> Channel:
    """`establish`, then the relay retry if it failed and the server offers TURN."""
    can_relay = turn_available and opts.transport is not Transport.TCP
    # a peer that already asked for the relay has closed its side of this attempt (§4.4 step 5)
    gave_up = _PeerGaveUp(signal, status) if can_relay else None
    try:
        return establish(signal, keys, peer, opts, status, stop=gave_up)
    except PeerLeftError:
        # a peer that refused the relay leaves at once, maybe before our own attempt ended
        if signal.poll({SignalType.RELAY_DENIED}) is not None:
            raise _declined() from None
        raise
    except ConnectError:
        if not can_relay:
            raise
        log.debug("direct connection failed; trying the relay flow")
    notice("Could not establish a direct connection; trying a TURN relay...")
    peer_agreed = gave_up is not None and gave_up.seen
    try:
        return _relay(signal, keys, peer, opts, allow_relay, consent, status, peer_agreed)
    except SignalClosed as exc:
        raise ConnectError(f"lost the signaling server during the relay retry: {exc}") from exc


class _PeerGaveUp:
    """`establish`'s stop test for the first attempt: the peer's relay-retry is queued.

    Taking that message out of the mailbox loses its place among the peer's older
    messages, so everything of its failed attempt still queued is dropped at once: the
    peer sends nothing for the next attempt before it has our own relay-retry.
    """

    def __init__(self, signal: SignalClient, status: StatusFn) -> None:
        self._signal = signal
        self._status = status
        self.seen = False

    def __call__(self) -> bool:
        if self.seen:
            return True
        if self._signal.poll({SignalType.RELAY_RETRY}) is None:
            return False
        self.seen = True
        while self._signal.poll(_STALE) is not None:
            pass
        self._status("WebRTC", "the peer gave up on a direct connection and asks for the relay")
        return True


def _relay(
    signal: SignalClient,
    keys: SessionKeys,
    peer: PeerInfo,
    opts: ConnectOptions,
    allow_relay: bool,
    consent: ConsentFn,
    status: StatusFn,
    peer_agreed: bool,
) -> Channel:
    # ask the server first, so the peer can be asked in parallel (§4.9 step 2)
    signal.send_type(SignalType.RELAY_RETRY)
    turn = _wait_credentials(signal)
    status("WebRTC", f"TURN credentials for {len(turn)} server(s)")
    if not (allow_relay or consent()):
        signal.send_type(SignalType.RELAY_DENIED)
        raise ConnectError(
            "could not establish a direct connection, and the relay was not allowed",
            hint="use -allow-relay to route the end-to-end encrypted data through a TURN relay",
        )
    if peer_agreed:
        ended = signal.poll(_ENDING)
        if ended is not None:
            _check_common(ended)
    else:
        _wait_peer_agreement(signal)
    time.sleep(RETRY_PAUSE)
    retry = replace(
        opts, transport=Transport.WEBRTC, prefer_tcp=False, extra_ice_servers=turn,
    )  # fmt: skip
    status("WebRTC", "retrying through the TURN relay")
    # the peer's relay-retry comes before its user answers: a "no" may come only now
    declined = _Declined(signal)
    try:
        return establish(signal, keys, peer, retry, status, stop=declined)
    except PeerLeftError:
        if signal.poll({SignalType.RELAY_DENIED}) is not None:
            raise _declined() from None
        raise
    except ConnectError:
        if declined.seen:
            raise _declined() from None
        raise


class _Declined:
    """`establish`'s stop test for the relay retry: the peer's user said no."""

    def __init__(self, signal: SignalClient) -> None:
        self._signal = signal
        self.seen = False

    def __call__(self) -> bool:
        if not self.seen:
            self.seen = self._signal.poll({SignalType.RELAY_DENIED}) is not None
        return self.seen


def _wait_credentials(signal: SignalClient) -> list[dict[str, object]]:
    deadline = time.monotonic() + CREDENTIALS_TIMEOUT
    while True:
        env = _next(signal, _CREDENTIALS, deadline, "the server did not provide TURN credentials")
        _check_common(env)
        if env.type == SignalType.TURN_CREDENTIALS:
            try:
                creds = TurnCredentials.from_payload(env.payload)
            except SignalFormatError as exc:
                raise ConnectError(f"the server sent malformed TURN credentials: {exc}") from None
            servers = [s.to_payload() for s in creds.ice_servers]
            if not servers:
                raise ConnectError("the server provided no TURN servers")
            return servers


def _wait_peer_agreement(signal: SignalClient) -> None:
    """Wait for the peer's relay-retry (maybe queued since the first attempt), dropping the
    peer's older signaling: it belongs to the failed attempt and precedes its relay-retry."""
    deadline = time.monotonic() + AGREEMENT_TIMEOUT
    while True:
        env = _next(signal, _AGREEMENT, deadline, "the peer did not agree to the relay retry")
        _check_common(env)
        if env.type == SignalType.RELAY_RETRY:
            return


def _next(signal: SignalClient, types: set[SignalType], deadline: float, on_timeout: str) -> Envelope:
    try:
        return signal.wait_for(types, timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise ConnectError(on_timeout) from None


def _check_common(env: Envelope) -> None:
    if env.type == SignalType.RELAY_DENIED:
        raise _declined()
    if env.type == SignalType.PEER_LEFT:
        raise ConnectError("the peer left during the relay retry")
    if env.type == SignalType.ERROR:
        raise server_error(env)


def _declined() -> ConnectError:
    return ConnectError(
        "could not connect directly, and the peer declined the relay",
        hint="both sides must allow it (-allow-relay, or answer y when asked)",
    )


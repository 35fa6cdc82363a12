"""Meeting the peer: from the session keys to the framed peer-to-peer link (client.md §4.4).

The sender and the receiver learn about each other differently and move the data in opposite
directions, but between the key exchange and the first frame they do the same: show the
verify code, race the transports (relay retry included), hand the signaling session to a
healer where both can reconnect, frame the channel and widen it to parallel TCP.
"""

from __future__ import annotations

from collections.abc import Callable

from sp2p.config import Config
from sp2p.flow.connect import ConnectOptions, PeerInfo, StatusFn
from sp2p.flow.heal import Healer, quick_liveness
from sp2p.flow.parallel import eligible
from sp2p.flow.relay import ConsentFn, establish_or_relay
from sp2p.link.framed import FramedChannel, FrameLink
from sp2p.net.channel import Channel
from sp2p.net.signaling import SignalClient
from sp2p.proto.keys import SessionKeys
from sp2p.proto.signal import Envelope, Welcome
from sp2p.term.ui import Terminal

#: builds the sender's or the receiver's parallel link from a status callback
OpenParallel = Callable[[Callable[[str], None]], FrameLink]


def meet(
    term: Terminal,
    cfg: Config,
    signal: SignalClient,
    keys: SessionKeys,
    peer: PeerInfo,
    welcome: Welcome,
    *,
    allow_loopback: bool,
    prefer_tcp: bool,
    keep_listener: bool,
    consent: ConsentFn,
    heal: int,
    keep_signaling: bool,
    keepalive: Envelope | None = None,
) -> tuple[Channel, Healer | None]:
    """The confirmed channel and, with `keep_signaling`, the healer that now owns the signaling
    session (without one the caller closes it: v2 signaling ends once the channel is up).

    `heal` is the heal version both speak; `keepalive` is re-sent while a reconnect waits.
    """
    term.line(f"Verify: {keys.verify_code}")
    term.line("Establishing P2P connection...")
    status = _status(term)
    opts = ConnectOptions(
        transport=cfg.transport,
        allow_loopback=allow_loopback,
        ice_servers=[s.to_payload() for s in welcome.ice_servers],
        prefer_tcp=prefer_tcp,
        keep_listener=keep_listener,
    )
    channel = establish_or_relay(
        signal, keys, peer, opts,
        turn_available=welcome.turn_available, allow_relay=cfg.allow_relay,
        status=status, notice=term.line, consent=consent,
    )  # fmt: skip
    if not keep_signaling:
        return channel, None
    healer = Healer(
        signal, keys, peer, opts, budget=cfg.reconnect, version=heal, keepalive=keepalive, status=status
    )
    healer.attach(channel)
    return channel, healer


def framed(
    term: Terminal, channel: Channel, keys: SessionKeys, heal: int, *, again: bool = False
) -> FramedChannel:
    """The channel framed and sealed, with the liveness rule the heal version asks for."""
    fc = FramedChannel(channel, keys)
    fc.liveness.quick = quick_liveness(heal)
    term.line(f"{'Reconnected' if again else 'Connected'} via {fc.transport}")
    return fc


def relink(term: Terminal, healer: Healer, deadline: float) -> FramedChannel:
    """Reconnect (ConnectionLost once `deadline` passed) and frame the new channel."""
    channel, keys = healer.reconnect(deadline)
    healer.attach(channel)
    return framed(term, channel, keys, healer.version, again=True)


def widen(
    term: Terminal, fc: FramedChannel, wanted: bool, peer: PeerInfo, open_link: OpenParallel
) -> FrameLink | None:
    """The parallel-TCP link where both asked for it and TCP won, else None."""
    if not eligible(fc, wanted, peer.parallel_tcp):
        return None
    link = open_link(lambda s: term.debug(f"parallel: {s}"))
    if link.streams > 1:
        term.line(f"Using {link.streams} parallel streams")
    return link


def _status(term: Terminal) -> StatusFn:
    return lambda method, detail: term.debug(f"{method}: {detail}")

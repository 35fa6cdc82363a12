"""The sender's waiting room: the code, share URL, receive commands and QR, then the receiver.

Between hello/welcome and the key exchange (client.md §4.4 steps 2–4): what the sender
shows while it waits, and the wait itself, which answers peer-joined with our Crypto and
ends with the receiver's.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator

from sp2p.config import DEFAULT_SERVER, Config, share_base_url, signaling_url
from sp2p.errors import Declined, PeerCancelled, SignalingError
from sp2p.flow.session import PeerKey, parse_peer_crypto, server_error
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.codes import share_url
from sp2p.proto.constants import PREFER_TCP_THRESHOLD, Transport
from sp2p.proto.messages import Metadata
from sp2p.proto.signal import ClientType, Crypto, Envelope, ErrorCode, PeerJoined, SignalType
from sp2p.term.ui import Terminal, count, describe, human_size


def wait_for_receiver(
    signal: SignalClient, term: Terminal, public_b64: str, meta: Metadata, cfg: Config, *,
    heal: int, resume: int,
) -> tuple[str, PeerKey, bool]:
    """Answer the receiver's peer-joined with our Crypto; wait for its own.

    Args:
        heal, resume: the versions we announce.

    Returns:
        (peer client type, its key, whether we offered parallel TCP).
    """
    term.line("Waiting for receiver...")
    peer_type = ClientType.CLI.value
    parallel = False
    try:
        while True:
            env = signal.wait_for(
                {SignalType.PEER_JOINED, SignalType.CRYPTO, SignalType.PEER_LEFT, SignalType.ERROR,
                 SignalType.DECLINE}
            )
            if env.type == SignalType.PEER_JOINED:
                peer_type = PeerJoined.from_payload(env.payload).client_type or ClientType.CLI.value
                term.line("Receiver connected")
                prefer = cfg.transport is Transport.AUTO and meta.size >= PREFER_TCP_THRESHOLD
                parallel = peer_type == ClientType.CLI and cfg.parallel != 1
                crypto = Crypto(
                    public_key=public_b64, prefer_tcp=prefer, parallel_tcp=parallel,
                    resume=resume, heal=heal,
                )  # fmt: skip
                signal.send(Envelope.build(SignalType.CRYPTO, crypto))
            elif env.type == SignalType.CRYPTO:
                return peer_type, parse_peer_crypto(env), parallel
            elif env.type == SignalType.DECLINE:
                raise Declined("the receiver declined the transfer")
            elif env.type == SignalType.PEER_LEFT:  # e.g. Ctrl-C at its "Receive it?": the code is used
                raise PeerCancelled("the receiver left before the transfer started")
            else:
                err = server_error(env)
                if err.code == ErrorCode.PEER_VERSION_MISMATCH:
                    term.warn("a receiver with an incompatible version tried to join; still waiting")
                    continue
                raise err
    except SignalClosed as exc:
        raise SignalingError(f"lost the signaling server while waiting: {exc}") from exc


def receive_commands(base: str, code: str) -> list[tuple[str, str]]:
    """(label, command) pairs that work as printed: `-server` whenever the server is not the
    CLI's default, https-only download flags for the bootstrap script (D1)."""
    server = "" if base == share_base_url(signaling_url(DEFAULT_SERVER)) else f"-server {shlex.quote(base)} "
    curl = "curl --proto '=https' --tlsv1.2 -fsSL" if base.startswith("https://") else "curl -fsSL"
    return [
        ("Terminal:", f"sp2p receive {server}{code}"),
        ("or:", f"SP2P_CODE={code} sp2p receive {server}".rstrip()),
        ("or:", f"{curl} {shlex.quote(base + '/r')} | SP2P_CODE={code} sh"),
    ]


@contextlib.contextmanager
def qr_while_waiting(term: Terminal, url: str, shown: bool, *, typed: bool = False) -> Iterator[None]:
    """-qr draws the share URL's QR code; on a terminal `q` toggles it until the receiver comes,
    unless the data is `typed` on that terminal: every key then belongs to the data (a
    listener would eat what is typed while the sender waits, Ctrl-D included)."""
    if not shown and (typed or not term.is_tty):
        yield
        return
    from sp2p.term.prompts import KeyListener
    from sp2p.term.qr import QrToggle

    toggle = QrToggle(term, url, shown=shown, keys=not typed)
    if typed or not term.is_tty:
        yield
        return
    with KeyListener(toggle.on_key):
        yield


def show_code(term: Terminal, base: str, code: str, meta: Metadata, paths: int, *,
              typed: bool = False) -> None:
    """The offer, the code and how to receive it. `typed`: the stream is read from this
    terminal, so no key is ours to listen for (see qr_while_waiting)."""
    url = share_url(base, code)
    what = (
        f"{paths} items ({human_size(meta.size)} in {count(meta.file_count, 'file')})"
        if paths > 1
        else describe(term.peer_text(meta.name), meta.size, meta.file_count, stream=meta.stream_mode)
    )
    term.line(f"Sending: {what}")
    term.line()
    if not term.one_screen:  # for scripts; on a terminal the lines below already show both
        term.stdout_line(code)
        term.stdout_line(url)
    term.line("Receive via:")
    term.line(f"  Browser:   {url}" + ("  (press q for QR code)" if term.is_tty and not typed else ""))
    for label, command in receive_commands(base, code):
        term.line(f"  {label:>9}  {command}")
    term.line()
    if typed:
        term.line("The data is what you type here: end it with Ctrl-D at the start of a line")

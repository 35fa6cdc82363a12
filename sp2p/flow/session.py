"""The signaling half of a session: hello/join, the public-key exchange, the key schedule."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Final

from sp2p.errors import SignalingError
from sp2p.net.signaling import SignalClient, SignalClosed
from sp2p.proto.heal import HEAL_VERSION
from sp2p.proto.keys import KeyPair, decode_public_key
from sp2p.proto.resume import RESUME_VERSION
from sp2p.proto.signal import (
    ClientType,
    Crypto,
    Envelope,
    Error,
    ErrorCode,
    Hello,
    Join,
    SignalFormatError,
    SignalType,
    Welcome,
)
from sp2p.record import field, record
from sp2p.term.ui import Terminal

if TYPE_CHECKING:
    from sp2p.config import Config

WELCOME_TIMEOUT = 15.0
#: a waiting sender re-sends file-info this often so the server never reaps its session (W18)
KEEPALIVE_INTERVAL = 60.0

#: what the user reads for a server error code (keyed by the wire string)
_ERROR_TEXT: Final[dict[str, str]] = {
    ErrorCode.SESSION_NOT_FOUND: (
        "transfer session not found: the code is mistyped, has expired, or was already used "
        "(each code works once)"
    ),
    ErrorCode.SESSION_FULL: "someone has already connected to this transfer session",
    ErrorCode.VERSION_MISMATCH: "incompatible version: the other side speaks another protocol version",
    ErrorCode.RATE_LIMITED: "the signaling server is rate limiting this address; try again in a minute",
    ErrorCode.SERVER_BUSY: "the signaling server is busy; try again later",
}
#: the codes whose text is ours followed by the server's own words: a session ends for more
#: than one reason under one code ("session expired"; "session lost by the server" when its
#: store lost the record), and only the server knows which
_ERROR_LEAD: Final[dict[str, str]] = {
    ErrorCode.SESSION_EXPIRED: "the signaling server ended this transfer session",
}
#: what to do next, for the errors that have one
_ERROR_HINT: Final[dict[str, str]] = {
    ErrorCode.SESSION_EXPIRED: (
        "a code lasts a limited time (an hour, or 5 minutes without traffic, unless the server says "
        "otherwise); start again: sp2p send gives a new code"
    ),
}


def client_platform() -> tuple[str, str]:
    """GOOS / GOARCH names, as the Go client reports them."""
    os_name = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform, sys.platform)
    if hasattr(os, "uname"):  # what platform.machine() reads on POSIX, without its import
        machine = os.uname().machine.lower()
    else:
        import platform

        machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return os_name, arch


def server_error(env: Envelope) -> SignalingError:
    try:
        err = Error.from_payload(env.payload)
    except SignalFormatError:
        err = Error(message="malformed error message")
    said = err.message[:200] or err.code
    if err.code in _ERROR_LEAD:
        text = f"{_ERROR_LEAD[err.code]}: {said}"
    else:
        text = _ERROR_TEXT.get(err.code, f"server error: {said}")
    return SignalingError(text, code=err.code, hint=_ERROR_HINT.get(err.code))


def hello() -> Hello:
    os_name, arch = client_platform()
    return Hello(client_type=ClientType.CLI, client_os=os_name, client_arch=arch)


def join(session_id: str) -> Join:
    first = hello()
    return Join(session_id, first.version, first.client_type, first.client_os, first.client_arch)


def join_envelope(session_id: str) -> Envelope:
    return Envelope.build(SignalType.JOIN, join(session_id))


def our_heal(cfg: Config) -> int:
    """What we announce: every transfer can continue (version 2), unless -reconnect 0."""
    return HEAL_VERSION if cfg.reconnect > 0 else 0


@record()
class Opening:
    """A receiver's first messages (client.md §4.4): `join`, then at once its key, as Go's
    receiver does, unless the user is still to accept the offer (then `crypto` waits). The CLI
    has EarlySignal send them as soon as the socket is open, so the server and the sender
    answer while we load (issue 12)."""

    join: Envelope
    keys: KeyPair
    crypto: Envelope
    resume: int  #: the resume version we announce
    heal: int  #: the heal version we announce
    key_now: bool

    @property
    def messages(self) -> list[Envelope]:
        return [self.join, self.crypto] if self.key_now else [self.join]


def receiver_opening(session_id: str, cfg: Config, *, to_stdout: bool, key_now: bool) -> Opening:
    keys = KeyPair.generate()
    # a partial lives in the output folder: nothing to resume into on stdout
    resume = 0 if cfg.no_resume or to_stdout else RESUME_VERSION
    heal = our_heal(cfg)
    crypto = Envelope.build(
        SignalType.CRYPTO,
        Crypto(public_key=keys.public_b64(), parallel_tcp=cfg.parallel != 1, resume=resume, heal=heal),
    )
    return Opening(join_envelope(session_id), keys, crypto, resume, heal, key_now)


def wait_welcome(signal: SignalClient) -> Welcome:
    try:
        env = signal.wait_for({SignalType.WELCOME, SignalType.ERROR}, timeout=WELCOME_TIMEOUT)
    except TimeoutError:
        raise SignalingError("the signaling server did not answer") from None
    except SignalClosed as exc:
        raise SignalingError(f"the signaling server closed the connection: {exc}") from exc
    if env.type == SignalType.ERROR:
        raise server_error(env)
    try:
        return Welcome.from_payload(env.payload)
    except SignalFormatError as exc:
        raise SignalingError(f"malformed welcome from the server: {exc}") from None


@record()
class PeerKey:
    public: bytes
    crypto: Crypto


def parse_peer_crypto(env: Envelope) -> PeerKey:
    try:
        crypto = Crypto.from_payload(env.payload)
    except SignalFormatError as exc:
        raise SignalingError(f"malformed key exchange message: {exc}") from None
    return PeerKey(decode_public_key(crypto.public_key), crypto)


@record()
class KeepAlive:
    """Re-sends one message periodically while a sender waits for its receiver."""

    signal: SignalClient
    env: Envelope
    interval: float = KEEPALIVE_INTERVAL
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> KeepAlive:
        threading.Thread(target=self._run, name="sp2p-keepalive", daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.signal.send(self.env)
            except SignalingError:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()



def notice_update(term: Terminal, welcome: Welcome, base_url: str) -> None:
    """One line when the server announces a newer release than ours (client.md §5.5)."""
    from sp2p.update import update_notice

    line = update_notice(welcome.server_version, base_url)
    if line is not None:
        term.line(line)

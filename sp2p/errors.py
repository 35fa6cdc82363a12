"""Typed errors of the core and its shells. They know nothing of processes: the CLI maps
them to exit codes at its one boundary (`exit_status_of`, the table in sp2p/status.py).

Sp2pError                      an error without a more specific class
├── UsageError
├── InvalidCodeError           a malformed transfer code (the CLI reports it as usage)
├── SignalingError
│   ├── ServerUnreachable      no sp2p server answered at the address
│   └── SignalFormatError      a signalling message is not JSON or has a wrong field type
├── ConnectError               no peer-to-peer path
├── SecurityError
│   ├── KeyConfirmationError   wrong code or a key-swapping server
│   └── IntegrityError         AEAD failure, sequence mismatch, nonce exhaustion
├── TransferError
│   ├── ConnectionLost         the link broke (a reconnect can heal it)
│   ├── PeerCancelled
│   ├── RemoteError            the peer sent an Error frame
│   ├── Declined               the receiver said no to the offer
│   ├── VerificationError      size/count/SHA-256 mismatch
│   └── RemoteProtocolError    the peer broke the protocol (raised by sp2p.proto)
├── LocalIOError
├── TransferTimeout            the peer silent or no progress for too long
└── LocalProtocolError         a bug on our side
"""

from __future__ import annotations


class Sp2pError(Exception):
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(Sp2pError):
    """Bad flags, a bad config value, a malformed code typed by the user."""


class InvalidCodeError(Sp2pError, ValueError):
    """A transfer code or share URL that cannot be parsed (sp2p.proto.codes).

    A core error, not a usage error: only the CLI knows the code came from its arguments.
    """


class SignalingError(Sp2pError):
    """The signaling server: unreachable, session unknown or full, refused, closed."""

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class ServerUnreachable(SignalingError):
    """No sp2p signaling server answered at the address (refused, unresolvable, not one)."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url  #: the WebSocket URL dialled


class SignalFormatError(SignalingError, ValueError):
    """A signalling message is not valid JSON or a field has the wrong JSON type.

    Raised by the sans-IO codec (sp2p.proto.gojson); still a ValueError for callers
    that treat it as bad input.
    """


class ConnectError(Sp2pError):
    """No peer-to-peer path: direct and relay attempts failed or the relay was declined."""


class SecurityError(Sp2pError):
    """Wrong code, failed key confirmation, tampering."""


class KeyConfirmationError(SecurityError):
    pass


class IntegrityError(SecurityError):
    pass


class TransferError(Sp2pError):
    """The transfer itself failed after the peers connected."""


class ConnectionLost(TransferError):
    """The peer-to-peer link broke while both sides may still be alive (a reconnect can heal it)."""


class PeerCancelled(TransferError):
    def __init__(self, message: str = "peer cancelled the transfer", *, reason: int = 0) -> None:
        super().__init__(message)
        self.reason = reason


class RemoteError(TransferError):
    pass


class Declined(TransferError):
    """The receiver said no to the offer (ours, or the peer's)."""


class VerificationError(TransferError):
    pass


class RemoteProtocolError(TransferError):
    pass


class StreamTruncated(RemoteProtocolError, ConnectionLost):
    """The byte stream ended inside a frame: a broken link more often than a broken peer."""


class LocalIOError(Sp2pError):
    """Our own files: unreadable input, unwritable output, disk full."""


class TransferTimeout(Sp2pError):
    """The peer was silent, or made no progress, for too long (Liveness in sp2p.proto.liveness)."""


class LocalProtocolError(Sp2pError):
    """Our own code broke the protocol: always a bug."""


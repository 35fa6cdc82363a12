"""Typed errors. Each class knows its exit status; the CLI maps them in one place.

Sp2pError                      exit 1
├── UsageError                 exit 2
├── InvalidCodeError           a malformed transfer code (the CLI reports it as usage, exit 2)
├── SignalingError             exit 3
│   └── SignalFormatError      a signalling message is not JSON or has a wrong field type
├── ConnectError               exit 4
├── SecurityError              exit 5
│   ├── KeyConfirmationError
│   └── IntegrityError         AEAD failure, sequence mismatch, nonce exhaustion
├── TransferError              exit 6
│   ├── PeerCancelled
│   ├── RemoteError            the peer sent an Error frame
│   ├── Declined               the receiver said no to the offer
│   ├── VerificationError      size/count/SHA-256 mismatch
│   └── RemoteProtocolError    the peer broke the protocol (raised by sp2p.proto)
├── LocalIOError               exit 7
└── TransferTimeout            exit 8
LocalProtocolError             exit 1  a bug on our side
"""

from __future__ import annotations

from sp2p.status import ExitStatus


class Sp2pError(Exception):
    exit_status: ExitStatus = ExitStatus.ERROR
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(Sp2pError):
    exit_status = ExitStatus.USAGE


class InvalidCodeError(Sp2pError, ValueError):
    """A transfer code or share URL that cannot be parsed (sp2p.proto.codes).

    A core error, not a usage error: only the CLI knows the code came from its arguments.
    """


class SignalingError(Sp2pError):
    exit_status = ExitStatus.SIGNALING

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class SignalFormatError(SignalingError, ValueError):
    """A signalling message is not valid JSON or a field has the wrong JSON type.

    Raised by the sans-IO codec (sp2p.proto.gojson); still a ValueError for callers
    that treat it as bad input.
    """


class ConnectError(Sp2pError):
    exit_status = ExitStatus.CONNECT


class SecurityError(Sp2pError):
    exit_status = ExitStatus.SECURITY


class KeyConfirmationError(SecurityError):
    pass


class IntegrityError(SecurityError):
    pass


class TransferError(Sp2pError):
    exit_status = ExitStatus.TRANSFER


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
    exit_status = ExitStatus.LOCAL_IO


class TransferTimeout(Sp2pError):
    exit_status = ExitStatus.TIMEOUT


class LocalProtocolError(Sp2pError):
    """Our own code broke the protocol: always a bug."""

    exit_status = ExitStatus.ERROR

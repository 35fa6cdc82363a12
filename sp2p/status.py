"""The single table of process exit codes (documented in README and man/sp2p.1), and
which error class ends in which code: the CLI's one boundary asks `exit_status_of`."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from sp2p.errors import (
    ConnectError,
    LocalIOError,
    SecurityError,
    SignalingError,
    Sp2pError,
    TransferError,
    TransferTimeout,
    UsageError,
)


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  #: unexpected failure (a bug, or an error without a more specific class)
    #: bad flags, a malformed code or a short one the sender's preview refuses, bad config, an input
    #: given twice, a -name that is not a plain file name
    USAGE = 2
    SIGNALING = 3  #: server unreachable, session not found/full, version mismatch
    CONNECT = 4  #: no peer-to-peer path (direct and relay failed, relay declined)
    SECURITY = 5  #: wrong code, key confirmation failed, tampering detected
    TRANSFER = 6  #: peer cancelled or left, peer error, verification failed, protocol violation, declined
    LOCAL_IO = 7  #: unreadable input, closed stdin/stdout, output not writable, disk full, would overwrite
    TIMEOUT = 8  #: peer silent for too long, or no progress (Liveness in sp2p/proto/liveness.py)
    INTERRUPTED = 130  #: Ctrl-C


#: error class -> exit code; a subclass takes its nearest listed ancestor's code
_BY_CLASS: Final[dict[type[Sp2pError], ExitStatus]] = {
    UsageError: ExitStatus.USAGE,
    SignalingError: ExitStatus.SIGNALING,
    ConnectError: ExitStatus.CONNECT,
    SecurityError: ExitStatus.SECURITY,
    TransferError: ExitStatus.TRANSFER,
    LocalIOError: ExitStatus.LOCAL_IO,
    TransferTimeout: ExitStatus.TIMEOUT,
}


def exit_status_of(exc: Sp2pError) -> ExitStatus:
    """The exit code for `exc`: the first class in its MRO that the table lists, else ERROR."""
    for cls in type(exc).__mro__:
        status = _BY_CLASS.get(cls)
        if status is not None:
            return status
    return ExitStatus.ERROR

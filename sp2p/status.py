"""The single table of process exit codes (documented in README and man/sp2p.1)."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  #: unexpected failure (a bug, or an error without a more specific class)
    USAGE = 2  #: bad flags, malformed transfer code, bad config
    SIGNALING = 3  #: server unreachable, session not found/full, version mismatch
    CONNECT = 4  #: no peer-to-peer path (direct and relay failed, relay declined)
    SECURITY = 5  #: wrong code, key confirmation failed, tampering detected
    TRANSFER = 6  #: peer cancelled, peer error, verification failed, protocol violation, declined
    LOCAL_IO = 7  #: unreadable input, output not writable, disk full, would overwrite
    TIMEOUT = 8  #: peer silent for too long, or no progress (Liveness in sp2p/proto/transfer.py)
    INTERRUPTED = 130  #: Ctrl-C

"""Reconnect ("heal") extension: versions, the stream-continuation bodies and the replay window
(docs/protocol-extensions.md §2).

Announced as ``"heal": N`` in both `crypto` payloads; the lower of the two versions is spoken:

    1  a single regular file continues after a reconnect through the resume frames (§1)
    2  also folders, stdin streams and files the receiver cannot resume into (-stdout,
       -no-resume): they continue from the receiver's acknowledged offset, replayed from
       the sender's window of recently sent plaintext:

    0x23 HealOffer   R->S  {"offset","chunks"}  plaintext bytes and Data frames written so far
    0x24 HealAccept  S->R  {"offset"}           equal to the offer; Data continues from there

The window keeps, per chunk, the stream digest as it was before that chunk, so the sender
continues its SHA-256 exactly at the receiver's offset and Done covers the whole stream.
"""

from __future__ import annotations

from collections import deque
from enum import Enum, auto
from typing import Any, Final, Protocol

from sp2p.errors import RemoteProtocolError, TransferError
from sp2p.proto.messages import Metadata, _dumps, _loads
from sp2p.proto.resume import _u63, accept_body, applies, parse_accept
from sp2p.record import record

#: the highest version we speak
HEAL_VERSION: Final = 2
#: version 2 adds folders and streams (HealOffer / HealAccept)
STREAM_HEAL: Final = 2
#: plaintext the sender keeps for a replay: more than every buffer between its reader and the
#: receiver's disk holds (send queue 4 MiB, socket buffers up to ~10 MiB per TCP stream,
#: the receiver's queue 8 MiB); memory is only used as data is sent
REPLAY_WINDOW: Final = 64 * 1024 * 1024
_U63 = 1 << 63


def spoken(ours: int, theirs: int) -> int:
    """The version both speak (0: no healing)."""
    return min(ours, theirs) if ours > 0 and theirs > 0 else 0


class Continuation(Enum):
    """How a transfer continues on a reconnected link."""

    NONE = auto()  #: it cannot: the transfer fails as without the extension
    RESUME = auto()  #: through the resume frames into the receiver's partial (§1)
    STREAM = auto()  #: through HealOffer / HealAccept and the sender's replay window


def continuation(version: int, *, resumes: bool, meta: Metadata) -> Continuation:
    """Decided from what both sides know: the spoken version, whether resume was negotiated,
    and the Metadata, so the two sides always agree."""
    if version <= 0:
        return Continuation.NONE
    if resumes and applies(meta):
        return Continuation.RESUME
    return Continuation.STREAM if version >= STREAM_HEAL else Continuation.NONE


@record(frozen=True)
class HealOffer:
    """Body of HealOffer: how much of the stream the receiver has written."""

    offset: int
    chunks: int

    def to_json(self) -> bytes:
        return _dumps({"offset": self.offset, "chunks": self.chunks})

    @classmethod
    def from_json(cls, body: bytes) -> HealOffer:
        what = "heal offer"
        obj = _loads(body, what)
        return cls(offset=_u63(obj, "offset", what), chunks=_u63(obj, "chunks", what))


def heal_accept_body(offset: int) -> bytes:
    return accept_body(offset)  # HealAccept's body is ResumeAccept's


def parse_heal_accept(body: bytes) -> int:
    return parse_accept(body, "heal accept")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Any: ...


@record(frozen=True)
class DigestState:
    """A stream digest frozen at a chunk boundary (the hasher is a private copy)."""

    sha: Hasher
    total_bytes: int
    chunk_count: int


class OutOfWindow(TransferError):
    """The receiver needs bytes the sender no longer keeps: the transfer cannot continue."""


class ReplayWindow:
    """The last `limit` bytes of sent plaintext chunks, each with the digest before it."""

    def __init__(self, limit: int = REPLAY_WINDOW) -> None:
        self.limit = limit
        self._entries: deque[tuple[DigestState, bytes]] = deque()
        self._held = 0

    def push(self, before: DigestState, chunk: bytes) -> None:
        self._entries.append((before, chunk))
        self._held += len(chunk)
        while self._held - len(self._entries[0][1]) >= self.limit:
            self._held -= len(self._entries.popleft()[1])

    def rewind(self, offer: HealOffer, end: DigestState) -> tuple[DigestState, list[bytes]]:
        """The digest at the receiver's offset and the chunks to send again from there.

        `end` is the digest now (after every pushed chunk). The chunks leave the window; the
        sender pushes them again as it re-sends them.
        """
        if offer.offset > end.total_bytes or offer.chunks > end.chunk_count:
            raise RemoteProtocolError(
                f"heal offer at byte {offer.offset} (frame {offer.chunks}), but only "
                f"{end.total_bytes} bytes in {end.chunk_count} frames were sent"
            )
        if (offer.offset, offer.chunks) == (end.total_bytes, end.chunk_count):
            return end, []
        first = self._entries[0][0].total_bytes if self._entries else end.total_bytes
        if offer.offset < first:
            raise OutOfWindow(
                f"cannot continue the transfer: the receiver needs it from byte {offer.offset}, "
                f"but only the last {_mib(end.total_bytes - first)} (from byte {first}) were kept "
                "for a reconnect",
                hint="send it again: a folder or a stream cannot resume on a re-run",
            )
        for i, (state, _) in enumerate(self._entries):
            if state.total_bytes == offer.offset:
                if state.chunk_count != offer.chunks:
                    raise RemoteProtocolError(
                        f"heal offer: byte {offer.offset} starts frame {state.chunk_count}, "
                        f"not {offer.chunks}"
                    )
                replay = [chunk for _, chunk in list(self._entries)[i:]]
                for _ in range(len(self._entries) - i):
                    self._held -= len(self._entries.pop()[1])
                return state, replay
        raise RemoteProtocolError(f"heal offer at byte {offer.offset} is not at a frame boundary")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"

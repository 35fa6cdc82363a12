"""Pure routing rules of the signalling server (server-web.md §2.3–2.6).

No I/O, no clock, no locks: functions take the message text plus a snapshot of what they
need to know and return a decision. `server.ws` carries the decisions out.

* `parse_first()` decides what the first message of a connection is: a `Hello`, a
  `Join`, or a `Refusal` (an `error` to send before closing).
* `check_join()` decides whether a receiver may take a session's slot.
* `route()` decides what happens to every later message: forward it byte for byte to
  the other peer, store file-info, answer relay-retry with TURN credentials, count a
  transfer, or ignore it.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Protocol

from sp2p.proto.constants import Role
from sp2p.proto.signal import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    RELAYED_TYPES,
    Envelope,
    ErrorCode,
    FileInfo,
    Hello,
    Join,
    SignalFormatError,
    SignalType,
    TransferComplete,
)

# -- first message -------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Send `error {code, message}` and close the connection."""

    code: ErrorCode
    message: str


INVALID_FORMAT = Refusal(ErrorCode.INVALID_MESSAGE, "invalid message format")
EXPECTED_HELLO_OR_JOIN = Refusal(ErrorCode.INVALID_MESSAGE, "expected hello or join")
INVALID_HELLO = Refusal(ErrorCode.INVALID_MESSAGE, "invalid hello payload")
INVALID_JOIN = Refusal(ErrorCode.INVALID_MESSAGE, "invalid join payload")
UNSUPPORTED_VERSION = Refusal(ErrorCode.VERSION_MISMATCH, "unsupported protocol version")
VERSION_MISMATCH = Refusal(ErrorCode.VERSION_MISMATCH, "protocol version mismatch with sender")
SESSION_NOT_FOUND = Refusal(ErrorCode.SESSION_NOT_FOUND, "transfer session not found")
SESSION_FULL = Refusal(ErrorCode.SESSION_FULL, "someone has already connected to this session")
HELLO_TIMEOUT = Refusal(ErrorCode.INVALID_MESSAGE, "expected hello or join (timed out)")


def version_supported(version: int) -> bool:
    return MIN_PROTOCOL_VERSION <= version <= PROTOCOL_VERSION


def parse_first(text: str) -> Hello | Join | Refusal:
    """The first message must be `hello` (sender) or `join` (receiver)."""
    try:
        envelope = Envelope.from_json(text)
    except SignalFormatError:
        return INVALID_FORMAT
    first = _FIRST.get(envelope.type)
    if first is None:
        return EXPECTED_HELLO_OR_JOIN
    payload, invalid = first
    try:
        if not envelope.payload_ok:
            return invalid
        message = payload.from_payload(envelope.payload)
    except SignalFormatError:
        return invalid
    return message if version_supported(message.version) else UNSUPPORTED_VERSION


#: the first message's payload type and the refusal for a malformed one
_FIRST: dict[str, tuple[type[Hello] | type[Join], Refusal]] = {
    SignalType.HELLO: (Hello, INVALID_HELLO),
    SignalType.JOIN: (Join, INVALID_JOIN),
}


class JoinCheck(enum.Enum):
    OK = "ok"


def check_join(
    *, exists: bool, has_receiver: bool, sender_version: int, receiver_version: int
) -> JoinCheck | Refusal:
    """Upstream order: unknown id, then a taken slot, then the version comparison, but
    the slot is only taken after the versions matched."""
    if not exists:
        return SESSION_NOT_FOUND
    if has_receiver:
        return SESSION_FULL
    if receiver_version != sender_version:
        return VERSION_MISMATCH
    return JoinCheck.OK


_CLIENT_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def clean_client_field(value: str) -> str:
    """clientType/OS/Arch are echoed to the other peer and logged: keep only short,
    plain values (`cli`, `browser`, `linux`, `amd64`, ...); anything else becomes ""."""
    if len(value) > 16 or not set(value) <= _CLIENT_TYPE_CHARS:
        return ""
    return value


# -- later messages ------------------------------------------------------------------


class PeerFacts(Protocol):
    """What `route()` reads about the sending peer and its session (attributes only: the
    connection's own state can answer without a snapshot object per message)."""

    @property
    def role(self) -> Role: ...
    @property
    def has_peer(self) -> bool: ...
    @property
    def since_join(self) -> float | None: ...
    @property
    def turn_available(self) -> bool: ...
    @property
    def turn_answers(self) -> int: ...
    @property
    def candidates(self) -> int: ...
    @property
    def file_info_set(self) -> bool: ...
    @property
    def completed(self) -> bool: ...


@dataclass(frozen=True)
class PeerView:
    """A snapshot of `PeerFacts` (tests, and callers without live state)."""

    role: Role
    has_peer: bool
    #: seconds since the receiver joined (None before that)
    since_join: float | None
    turn_available: bool
    turn_answers: int
    candidates: int
    file_info_set: bool
    completed: bool


@dataclass(frozen=True)
class Limits:
    turn_delay: float = 5.0
    turn_max_per_peer: int = 3
    max_candidates: int = 200
    max_file_info: int = 8192


# The actions `route()` returns, one small frozen record each: the shell matches on the type.
@dataclass(frozen=True)
class Forward:
    """Write `text` unchanged, as a text frame, to the other peer."""

    text: str
    kind: str = ""


@dataclass(frozen=True)
class StoreFileInfo:
    data: str


@dataclass(frozen=True)
class CountTransfer:
    nbytes: int


@dataclass(frozen=True)
class AnswerRelayRetry:
    """Send `turn-credentials` to the requester after `delay` seconds, *then* forward
    `text` (the relay-retry) to the other peer: upstream's order, without blocking the
    requester's read loop meanwhile."""

    delay: float
    text: str


@dataclass(frozen=True)
class Ignore:
    reason: str


Action = Forward | StoreFileInfo | CountTransfer | AnswerRelayRetry | Ignore

#: a relayed type before the receiver joined, as far as the view knows: the shell asks the
#: store whether it has joined since (on any node) and routes again only then
NO_PEER_YET = Ignore("no peer yet")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


#: the C scanner without hooks; NaN/Infinity refused as in Go (and in gojson.loads)
_PLAIN = json.JSONDecoder(parse_constant=_reject_constant)


def _plain_type(text: str) -> str | None:
    """The type of a message shaped as every client writes it (an object whose keys are
    exactly `type` and at most `payload`), parsed once by the C scanner; None for anything
    else, which takes the full Go-rules parse. With no other key, Go's case-insensitive,
    last-wins matching finds the same `type`, and an exact duplicate's last value wins in
    both. Relayed types never read the payload, so this is the whole decision for them."""
    try:
        data = _PLAIN.decode(text)
    except (ValueError, RecursionError):
        return None
    if type(data) is not dict or not 0 < len(data) <= 2:
        return None
    kind = data.get("type")
    if type(kind) is not str or (len(data) == 2 and "payload" not in data):
        return None
    return kind


def route(text: str, view: PeerFacts, limits: Limits) -> Action:
    kind = _plain_type(text)
    if kind is None or kind not in RELAYED_TYPES:
        try:
            envelope = Envelope.from_json(text)
        except SignalFormatError:
            return Ignore("undecodable")
        kind = envelope.type
        if kind == SignalType.FILE_INFO:
            return _file_info(envelope, view, limits)
        if kind == SignalType.TRANSFER_COMPLETE:
            return _transfer_complete(envelope, view)
        if kind not in RELAYED_TYPES:
            return Ignore(f"type not relayed: {kind[:32]!r}")
    if not view.has_peer:
        return NO_PEER_YET
    if kind == SignalType.CANDIDATE and view.candidates >= limits.max_candidates:
        return Ignore("candidate limit reached")
    if kind == SignalType.RELAY_RETRY and view.turn_available:
        if view.turn_answers >= limits.turn_max_per_peer:
            return Forward(text, kind)  # the peer still learns we want relay; no new creds
        since_join = view.since_join if view.since_join is not None else 0.0
        return AnswerRelayRetry(max(0.0, limits.turn_delay - since_join), text)
    return Forward(text, kind)


def _file_info(envelope: Envelope, view: PeerFacts, limits: Limits) -> Action:
    if view.role is not Role.SENDER:
        return Ignore("file-info from the receiver")
    if view.file_info_set:
        return Ignore("file-info already stored")
    try:
        data = FileInfo.from_payload(envelope.payload).data
    except SignalFormatError:
        return Ignore("malformed file-info")
    if not data or len(data) > limits.max_file_info:
        return Ignore("file-info empty or too large")
    return StoreFileInfo(data)


def _transfer_complete(envelope: Envelope, view: PeerFacts) -> Action:
    if view.completed:
        return Ignore("transfer already counted")  # upstream W-12: once per session
    try:
        nbytes = TransferComplete.from_payload(envelope.payload).bytes_transferred
    except SignalFormatError:
        return Ignore("malformed transfer-complete")
    return CountTransfer(nbytes)

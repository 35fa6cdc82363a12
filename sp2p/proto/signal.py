"""Signalling messages exchanged over the `/ws` WebSocket (client.md §4.2, server-web.md §2.2–2.3).

Every message is one JSON object `{"type": "<type>", "payload": {...}}`. This module is
sans-IO: it turns text into typed values and back, nothing else.

Decoding follows Go's `encoding/json`, which the original server and CLI use:

* object keys match case-insensitively (exact spelling preferred), the last duplicate wins,
  unknown keys are ignored;
* a missing key or a JSON `null` leaves the field at its zero value ("", 0, False, []);
* a value of the wrong JSON type (a string for an int, 2.0 for an int, a number for a
  string, ...) is an error, raised here as `SignalFormatError`.

Encoding follows Go's `json.Marshal`: struct field order, compact separators, raw UTF-8,
`<`, `>`, `&`, U+2028 and U+2029 escaped, and the omission rules of the Go struct tags
(`omitempty` fields vanish when empty or false).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Self

from sp2p.proto.constants import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION

__all__ = [
    "MAX_SIGNAL_MESSAGE",
    "MIN_PROTOCOL_VERSION",
    "PAYLOAD_TYPES",
    "PROTOCOL_VERSION",
    "RELAYED_TYPES",
    "SESSION_ID_ALPHABET",
    "SESSION_ID_LENGTH",
    "Candidate",
    "ClientType",
    "Crypto",
    "Direct",
    "Envelope",
    "Error",
    "ErrorCode",
    "FileInfo",
    "Hello",
    "IceServer",
    "Join",
    "Notice",
    "PeerJoined",
    "Sdp",
    "SignalFormatError",
    "SignalType",
    "TransferComplete",
    "TurnCredentials",
    "Welcome",
    "session_id_from_random",
]

#: largest WebSocket message either side accepts (bytes); larger ones close with 1009
MAX_SIGNAL_MESSAGE: Final = 65_536

#: session ids: 8 characters from 31 symbols (no 0, 1, i, l, o), about 39.6 bits
SESSION_ID_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"
SESSION_ID_LENGTH: Final = 8
#: random bytes at or above this are rejected so that `byte % 31` stays uniform
_SESSION_ID_BYTE_LIMIT: Final = 256 - 256 % len(SESSION_ID_ALPHABET)


class SignalFormatError(ValueError):
    """A signalling message is not valid JSON or a field has the wrong JSON type."""


class SignalType(StrEnum):
    HELLO = "hello"
    JOIN = "join"
    WELCOME = "welcome"
    PEER_JOINED = "peer-joined"
    CRYPTO = "crypto"
    DIRECT = "direct"
    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    CONNECTED = "connected"
    RELAY_RETRY = "relay-retry"
    RELAY_DENIED = "relay-denied"
    TURN_CREDENTIALS = "turn-credentials"
    FILE_INFO = "file-info"
    TRANSFER_COMPLETE = "transfer-complete"
    PEER_LEFT = "peer-left"
    ERROR = "error"
    RETRY = "retry"
    #: ours, server -> client, informational and non-fatal (old clients ignore unknown
    #: types): e.g. a receiver with the wrong protocol version tried to join this session
    NOTICE = "notice"
    #: ours, receiver -> sender (relayed): the receiver saw the preview and said no. Old
    #: servers drop it and the sender sees peer-left; old senders ignore it.
    DECLINE = "decline"


#: the only types the server forwards from one peer to the other (byte for byte)
RELAYED_TYPES: Final = frozenset(
    {
        SignalType.OFFER,
        SignalType.ANSWER,
        SignalType.CANDIDATE,
        SignalType.CRYPTO,
        SignalType.DIRECT,
        SignalType.CONNECTED,
        SignalType.RETRY,
        SignalType.RELAY_RETRY,
        SignalType.RELAY_DENIED,
        SignalType.DECLINE,
    }
)


class ErrorCode(StrEnum):
    """`code` of an `error` message. The first seven are the original server's."""

    INVALID_MESSAGE = "invalid_message"
    VERSION_MISMATCH = "version_mismatch"
    RATE_LIMITED = "rate_limited"
    SERVER_BUSY = "server_busy"
    INTERNAL_ERROR = "internal_error"
    SESSION_NOT_FOUND = "session_not_found"
    SESSION_FULL = "session_full"
    #: ours: the session hit its idle or maximum-age limit (upstream just closed the socket)
    SESSION_EXPIRED = "session_expired"
    #: ours: the receiver's version differs; sent to the *sender*, whose slot stays open
    PEER_VERSION_MISMATCH = "peer_version_mismatch"


class ClientType(StrEnum):
    CLI = "cli"
    BROWSER = "browser"


def session_id_from_random(data: bytes) -> str | None:
    """Map random bytes to a session id by rejection sampling; None if `data` ran out."""
    chars: list[str] = []
    for byte in data:
        if byte >= _SESSION_ID_BYTE_LIMIT:
            continue
        chars.append(SESSION_ID_ALPHABET[byte % len(SESSION_ID_ALPHABET)])
        if len(chars) == SESSION_ID_LENGTH:
            return "".join(chars)
    return None


# ---------------------------------------------------------------------------------------
# JSON in Go's manner


def _reject_constant(name: str) -> Any:
    raise SignalFormatError(f"invalid JSON constant {name}")


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # keep dict order = order of *last* occurrence, so case-folded lookups see Go's winner
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.pop(key, None)
        result[key] = value
    return result


def _loads(text: str | bytes) -> Any:
    if isinstance(text, bytes | bytearray | memoryview):
        # Go replaces invalid UTF-8 inside strings with U+FFFD instead of failing
        text = bytes(text).decode("utf-8", errors="replace")
    try:
        return json.loads(text, object_pairs_hook=_last_wins, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise SignalFormatError("invalid JSON") from exc


_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _dumps(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if any(c in text for c in _GO_ESCAPES):
        # only string contents can hold these characters, so a plain replace is exact
        for raw, escaped in _GO_ESCAPES.items():
            text = text.replace(raw, escaped)
    return text


_MISSING: Final = object()


def _lookup(d: Mapping[str, Any], name: str) -> Any:
    """Go's field matching: every key equal up to case assigns the field, so the last wins."""
    folded = name.casefold()
    found: Any = _MISSING
    for key, value in d.items():
        if key.casefold() == folded:
            found = value
    return found


def _str(d: Mapping[str, Any], name: str) -> str:
    value = _lookup(d, name)
    if value is _MISSING or value is None:
        return ""
    if not isinstance(value, str):
        raise SignalFormatError(f"{name}: expected a string")
    return value


def _bool(d: Mapping[str, Any], name: str) -> bool:
    value = _lookup(d, name)
    if value is _MISSING or value is None:
        return False
    if not isinstance(value, bool):
        raise SignalFormatError(f"{name}: expected a boolean")
    return value


def _int(d: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    value = _lookup(d, name)
    if value is _MISSING or value is None:
        return 0
    # bool is an int subclass in Python but not a JSON number; floats like 2.0 fail in Go too
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignalFormatError(f"{name}: expected an integer")
    if not lo <= value <= hi:
        raise SignalFormatError(f"{name}: integer out of range")
    return value


def _list(d: Mapping[str, Any], name: str) -> list[Any]:
    value = _lookup(d, name)
    if value is _MISSING or value is None:
        return []
    if not isinstance(value, list):
        raise SignalFormatError(f"{name}: expected an array")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SignalFormatError(f"{what}: expected an object")
    return value


_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1


def _omit_empty(*pairs: tuple[str, Any, bool]) -> dict[str, Any]:
    """Build a payload dict in field order; `omitempty` fields are dropped when falsy."""
    return {key: value for key, value, omitempty in pairs if not (omitempty and not value)}


# ---------------------------------------------------------------------------------------
# Envelope


@dataclass(frozen=True, slots=True)
class Envelope:
    """One signalling message. `payload` is `{}` when the JSON had null or no payload.

    `payload_ok` is False when the payload was absent or not a JSON object: Go then fails
    to decode a hello/join payload (→ "invalid hello payload"), while relayed types don't care.
    """

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    payload_ok: bool = field(default=True, compare=False)

    @classmethod
    def build(cls, msg_type: SignalType | str, body: _Payload | None = None) -> Envelope:
        return cls(str(msg_type), body.to_payload() if body is not None else {})

    def to_json(self) -> str:
        return _dumps({"type": self.type, "payload": self.payload})

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse a message. Raises SignalFormatError unless it is an object whose `type`
        is a string (a missing `type` reads as "", as in Go)."""
        data = _loads(text)
        if not isinstance(data, dict):
            raise SignalFormatError("message is not a JSON object")
        msg_type = _str(data, "type")
        raw = _lookup(data, "payload")
        if raw is _MISSING:
            return cls(msg_type, {}, payload_ok=False)
        if raw is None:
            return cls(msg_type, {})
        if not isinstance(raw, dict):
            return cls(msg_type, {}, payload_ok=False)
        return cls(msg_type, raw)


class _Payload:
    """Base for payload dataclasses: `to_payload()` and `from_payload()`."""

    def to_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Payloads (Go field names and order; omitempty as in the Go struct tags)


@dataclass(frozen=True, slots=True)
class Hello(_Payload):
    version: int = PROTOCOL_VERSION
    client_type: str = ""
    client_os: str = ""
    client_arch: str = ""

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(
            ("version", self.version, False),
            ("clientType", self.client_type, True),
            ("clientOS", self.client_os, True),
            ("clientArch", self.client_arch, True),
        )

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "hello")
        return cls(
            version=_int(d, "version", *_INT64),
            client_type=_str(d, "clientType"),
            client_os=_str(d, "clientOS"),
            client_arch=_str(d, "clientArch"),
        )


@dataclass(frozen=True, slots=True)
class Join(_Payload):
    session_id: str = ""
    version: int = PROTOCOL_VERSION
    client_type: str = ""
    client_os: str = ""
    client_arch: str = ""

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(
            ("version", self.version, False),
            ("sessionId", self.session_id, False),
            ("clientType", self.client_type, True),
            ("clientOS", self.client_os, True),
            ("clientArch", self.client_arch, True),
        )

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "join")
        return cls(
            session_id=_str(d, "sessionId"),
            version=_int(d, "version", *_INT64),
            client_type=_str(d, "clientType"),
            client_os=_str(d, "clientOS"),
            client_arch=_str(d, "clientArch"),
        )


@dataclass(frozen=True, slots=True)
class IceServer(_Payload):
    urls: tuple[str, ...] = ()
    username: str = ""
    credential: str = ""

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(
            ("urls", list(self.urls), False),
            ("username", self.username, True),
            ("credential", self.credential, True),
        )

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "iceServer")
        urls = _list(d, "urls")
        if not all(isinstance(u, str) for u in urls):
            raise SignalFormatError("urls: expected strings")
        return cls(urls=tuple(urls), username=_str(d, "username"), credential=_str(d, "credential"))


def _ice_servers(d: Mapping[str, Any]) -> tuple[IceServer, ...]:
    return tuple(IceServer.from_payload(item) for item in _list(d, "iceServers"))


@dataclass(frozen=True, slots=True)
class Welcome(_Payload):
    session_id: str = ""
    ice_servers: tuple[IceServer, ...] = ()
    turn_available: bool = False
    peer_client_type: str = ""
    server_version: str = ""
    base_url: str = ""

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(
            ("sessionId", self.session_id, False),
            ("iceServers", [s.to_payload() for s in self.ice_servers], True),
            ("turnAvailable", self.turn_available, True),
            ("peerClientType", self.peer_client_type, True),
            ("serverVersion", self.server_version, True),
            ("baseUrl", self.base_url, True),
        )

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "welcome")
        return cls(
            session_id=_str(d, "sessionId"),
            ice_servers=_ice_servers(d),
            turn_available=_bool(d, "turnAvailable"),
            peer_client_type=_str(d, "peerClientType"),
            server_version=_str(d, "serverVersion"),
            base_url=_str(d, "baseUrl"),
        )


@dataclass(frozen=True, slots=True)
class PeerJoined(_Payload):
    client_type: str = ""

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(("clientType", self.client_type, True))

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        return cls(client_type=_str(_object(d, "peer-joined"), "clientType"))


@dataclass(frozen=True, slots=True)
class Crypto(_Payload):
    public_key: str = ""  #: standard base64 of the 32-byte X25519 public key
    prefer_tcp: bool = False
    parallel_tcp: bool = False
    #: our extension (docs/protocol-extensions.md §1.1); Go and browsers ignore the field
    resume: int = 0

    def to_payload(self) -> dict[str, Any]:
        return _omit_empty(
            ("publicKey", self.public_key, False),
            ("preferTCP", self.prefer_tcp, True),
            ("parallelTCP", self.parallel_tcp, True),
            ("resume", self.resume, True),
        )

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "crypto")
        return cls(
            public_key=_str(d, "publicKey"),
            prefer_tcp=_bool(d, "preferTCP"),
            parallel_tcp=_bool(d, "parallelTCP"),
            resume=_extension_version(d, "resume"),
        )


def _extension_version(d: Mapping[str, Any], name: str) -> int:
    """An extension's announced version; anything unusable means "not spoken", never an error
    (a peer we do not know may use the same name differently)."""
    value = _lookup(d, name)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, min(value, 1 << 16))


@dataclass(frozen=True, slots=True)
class Direct(_Payload):
    tcp: str = ""  #: "host:port", IPv6 as "[addr]:port"

    def to_payload(self) -> dict[str, Any]:
        return {"tcp": self.tcp}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        return cls(tcp=_str(_object(d, "direct"), "tcp"))


@dataclass(frozen=True, slots=True)
class Sdp(_Payload):
    """Payload of `offer` and `answer`."""

    sdp: str = ""
    type: str = ""  #: "offer" or "answer"

    def to_payload(self) -> dict[str, Any]:
        return {"sdp": self.sdp, "type": self.type}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "sdp")
        return cls(sdp=_str(d, "sdp"), type=_str(d, "type"))


@dataclass(frozen=True, slots=True)
class Candidate(_Payload):
    candidate: str = ""
    sdp_mid: str = ""
    sdp_mline_index: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
        }

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "candidate")
        return cls(
            candidate=_str(d, "candidate"),
            sdp_mid=_str(d, "sdpMid"),
            sdp_mline_index=_int(d, "sdpMLineIndex", 0, 0xFFFF),
        )


@dataclass(frozen=True, slots=True)
class TurnCredentials(_Payload):
    ice_servers: tuple[IceServer, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {"iceServers": [s.to_payload() for s in self.ice_servers]}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        return cls(ice_servers=_ice_servers(_object(d, "turn-credentials")))


@dataclass(frozen=True, slots=True)
class FileInfo(_Payload):
    data: str = ""  #: standard base64 of nonce ‖ ciphertext ‖ tag

    def to_payload(self) -> dict[str, Any]:
        return {"data": self.data}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        return cls(data=_str(_object(d, "file-info"), "data"))


@dataclass(frozen=True, slots=True)
class TransferComplete(_Payload):
    bytes_transferred: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {"bytesTransferred": self.bytes_transferred}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "transfer-complete")
        return cls(bytes_transferred=_int(d, "bytesTransferred", 0, _UINT64_MAX))


@dataclass(frozen=True, slots=True)
class Error(_Payload):
    code: str = ""
    message: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "error")
        return cls(code=_str(d, "code"), message=_str(d, "message"))


@dataclass(frozen=True, slots=True)
class Notice(_Payload):
    """Payload of `notice` (ours): same shape as `error`, but the session goes on."""

    code: str = ""
    message: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any] | None) -> Self:
        d = _object(d, "notice")
        return cls(code=_str(d, "code"), message=_str(d, "message"))


#: payload class per type, for code that dispatches on `Envelope.type`
PAYLOAD_TYPES: Final[Mapping[str, Callable[[Mapping[str, Any] | None], _Payload]]] = {
    SignalType.HELLO: Hello.from_payload,
    SignalType.JOIN: Join.from_payload,
    SignalType.WELCOME: Welcome.from_payload,
    SignalType.PEER_JOINED: PeerJoined.from_payload,
    SignalType.CRYPTO: Crypto.from_payload,
    SignalType.DIRECT: Direct.from_payload,
    SignalType.OFFER: Sdp.from_payload,
    SignalType.ANSWER: Sdp.from_payload,
    SignalType.CANDIDATE: Candidate.from_payload,
    SignalType.TURN_CREDENTIALS: TurnCredentials.from_payload,
    SignalType.FILE_INFO: FileInfo.from_payload,
    SignalType.TRANSFER_COMPLETE: TransferComplete.from_payload,
    SignalType.ERROR: Error.from_payload,
    SignalType.NOTICE: Notice.from_payload,
}

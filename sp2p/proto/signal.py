"""Signalling messages exchanged over the `/ws` WebSocket (client.md §4.2, server-web.md §2.2–2.3).

Every message is one JSON object `{"type": "<type>", "payload": {...}}`. This module is
sans-IO: it turns text into typed values and back, nothing else.

Each payload is described once, as a frozen record (`gojson.Payload`) whose fields carry
their JSON name and Go's `omitempty` (`wire()`); `sp2p.proto.gojson` codes all of them the way Go's
`encoding/json` does (its rules are listed there). Wrong input raises `SignalFormatError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Final

from sp2p.errors import SignalFormatError
from sp2p.proto.codes import SESSION_ID_ALPHABET, SESSION_ID_LENGTH, session_id_from_random
from sp2p.proto.constants import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from sp2p.proto.gojson import MISSING, UINT16, UINT64, Payload, dumps, loads, lookup, read_str, wire

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
    #: servers drop it and the sender sees peer-left; old senders ignore it
    #: (docs/protocol-extensions.md §3).
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


# ---------------------------------------------------------------------------------------
# Envelope


class Envelope:
    """One signalling message. `payload` is `{}` when the JSON had null or no payload.

    `payload_ok` is False when the payload was absent or not a JSON object: Go then fails
    to decode a hello/join payload (→ "invalid hello payload"), while relayed types don't care.
    """

    __slots__ = ("payload", "payload_ok", "type")

    def __init__(self, type: str, payload: dict[str, Any] | None = None, payload_ok: bool = True) -> None:  # noqa: A002
        self.type = type
        self.payload: dict[str, Any] = {} if payload is None else payload
        self.payload_ok = payload_ok

    def __eq__(self, other: object) -> bool:  # payload_ok is not compared, as before
        if not isinstance(other, Envelope):
            return NotImplemented
        return (self.type, self.payload) == (other.type, other.payload)

    __hash__ = None  # type: ignore[assignment]  # mutable payload dict

    def __repr__(self) -> str:
        return f"Envelope(type={self.type!r}, payload={self.payload!r}, payload_ok={self.payload_ok!r})"

    @classmethod
    def build(cls, msg_type: SignalType | str, body: Payload | None = None) -> Envelope:
        return cls(str(msg_type), body.to_payload() if body is not None else {})

    def to_json(self) -> str:
        return dumps({"type": self.type, "payload": self.payload})

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse a message. Raises SignalFormatError unless it is an object whose `type`
        is a string (a missing `type` reads as "", as in Go)."""
        data = loads(text)
        if not isinstance(data, dict):
            raise SignalFormatError("message is not a JSON object")
        msg_type = read_str(data, "type")
        raw = lookup(data, "payload")
        if raw is MISSING:
            return cls(msg_type, {}, payload_ok=False)
        if raw is None:
            return cls(msg_type, {})
        if not isinstance(raw, dict):
            return cls(msg_type, {}, payload_ok=False)
        return cls(msg_type, raw)


# ---------------------------------------------------------------------------------------
# Payloads (Go field names and order; omitempty as in the Go struct tags)


class Hello(Payload):
    what: ClassVar[str] = "hello"
    version: int = wire("version", PROTOCOL_VERSION)
    client_type: str = wire("clientType", "", omitempty=True)
    client_os: str = wire("clientOS", "", omitempty=True)
    client_arch: str = wire("clientArch", "", omitempty=True)


# Join repeats Hello's client fields: two Go structs, kept as two classes so that a type check
# (server/relay.py) tells a sender's first message from a receiver's.
class Join(Payload):
    what: ClassVar[str] = "join"
    json_order: ClassVar[tuple[str, ...]] = (
        "version",
        "session_id",
        "client_type",
        "client_os",
        "client_arch",
    )
    session_id: str = wire("sessionId", "")
    version: int = wire("version", PROTOCOL_VERSION)
    client_type: str = wire("clientType", "", omitempty=True)
    client_os: str = wire("clientOS", "", omitempty=True)
    client_arch: str = wire("clientArch", "", omitempty=True)


class IceServer(Payload):
    what: ClassVar[str] = "iceServer"
    urls: tuple[str, ...] = wire("urls", ())
    username: str = wire("username", "", omitempty=True)
    credential: str = wire("credential", "", omitempty=True)


class Welcome(Payload):
    what: ClassVar[str] = "welcome"
    session_id: str = wire("sessionId", "")
    ice_servers: tuple[IceServer, ...] = wire("iceServers", (), omitempty=True)
    turn_available: bool = wire("turnAvailable", False, omitempty=True)
    peer_client_type: str = wire("peerClientType", "", omitempty=True)
    server_version: str = wire("serverVersion", "", omitempty=True)
    base_url: str = wire("baseUrl", "", omitempty=True)


class PeerJoined(Payload):
    what: ClassVar[str] = "peer-joined"
    client_type: str = wire("clientType", "", omitempty=True)


def _extension_version(d: Mapping[str, Any], name: str) -> int:
    """An extension's announced version; anything unusable means "not spoken", never an error
    (a peer we do not know may use the same name differently)."""
    value = lookup(d, name)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, min(value, 1 << 16))


class Crypto(Payload):
    what: ClassVar[str] = "crypto"
    #: standard base64 of the 32-byte X25519 public key
    public_key: str = wire("publicKey", "")
    prefer_tcp: bool = wire("preferTCP", False, omitempty=True)
    parallel_tcp: bool = wire("parallelTCP", False, omitempty=True)
    #: our extensions (docs/protocol-extensions.md §1.1, §2.1); Go and browsers ignore the fields
    resume: int = wire("resume", 0, omitempty=True, read=_extension_version)
    heal: int = wire("heal", 0, omitempty=True, read=_extension_version)


class Direct(Payload):
    what: ClassVar[str] = "direct"
    #: "host:port", IPv6 as "[addr]:port"
    tcp: str = wire("tcp", "")


class Sdp(Payload):
    """Payload of `offer` and `answer`."""

    what: ClassVar[str] = "sdp"
    sdp: str = wire("sdp", "")
    #: "offer" or "answer"
    type: str = wire("type", "")


class Candidate(Payload):
    what: ClassVar[str] = "candidate"
    candidate: str = wire("candidate", "")
    sdp_mid: str = wire("sdpMid", "")
    sdp_mline_index: int = wire("sdpMLineIndex", 0, int_range=UINT16)


class TurnCredentials(Payload):
    what: ClassVar[str] = "turn-credentials"
    ice_servers: tuple[IceServer, ...] = wire("iceServers", ())


class FileInfo(Payload):
    what: ClassVar[str] = "file-info"
    #: standard base64 of nonce ‖ ciphertext ‖ tag
    data: str = wire("data", "")


class TransferComplete(Payload):
    what: ClassVar[str] = "transfer-complete"
    bytes_transferred: int = wire("bytesTransferred", 0, int_range=UINT64)


class _CodeMessage(Payload):
    code: str = wire("code", "")
    message: str = wire("message", "")


class Error(_CodeMessage):
    what: ClassVar[str] = "error"


class Notice(_CodeMessage):
    """Payload of `notice` (ours): same shape as `error`, but the session goes on."""

    what: ClassVar[str] = "notice"


#: payload class per type, for code that dispatches on `Envelope.type`
PAYLOAD_TYPES: Final[Mapping[str, Callable[[Mapping[str, Any] | None], Payload]]] = {
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

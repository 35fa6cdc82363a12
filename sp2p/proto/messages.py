"""Bodies of transfer frames (client.md §3.1–3.2).

JSON is written in Go's field order with Go's omission rules, and read the way Go
reads it (case-insensitive keys, unknown keys ignored) but validated strictly.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

from sp2p.errors import RemoteProtocolError
from sp2p.proto.constants import MAX_CONTROL_SIZE, MAX_PARALLEL_STREAMS, CancelReason
from sp2p.record import record

MAX_NAME_BYTES = 255
MAX_FILE_COUNT = 100_000
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _loads(body: bytes, what: str) -> dict[str, Any]:
    if len(body) > MAX_CONTROL_SIZE:
        raise RemoteProtocolError(f"{what} too large ({len(body)} bytes)")
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise RemoteProtocolError(f"malformed {what}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"malformed {what}: not a JSON object")
    # Go matches field names case-insensitively; later duplicates win, as in Go.
    return {str(k).lower(): v for k, v in obj.items()}


def _field(obj: dict[str, Any], key: str, kind: type, default: Any, what: str) -> Any:
    value = obj.get(key.lower(), default)
    if value is None:
        return default
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RemoteProtocolError(f"malformed {what}: {key} must be an integer")
    elif not isinstance(value, kind):
        raise RemoteProtocolError(f"malformed {what}: {key} has the wrong type")
    return value


@record(frozen=True)
class Metadata:
    name: str
    size: int
    type: str = ""
    is_folder: bool = False
    stream_mode: bool = False
    file_count: int = 0
    compression: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "size": self.size,
            "type": self.type,
            "isFolder": self.is_folder,
            "streamMode": self.stream_mode,
        }
        if self.file_count > 0:
            d["fileCount"] = self.file_count
        if self.compression:
            d["compression"] = self.compression
        return d

    def to_json(self) -> bytes:
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, body: bytes) -> Metadata:
        what = "metadata"
        obj = _loads(body, what)
        name = _field(obj, "name", str, "", what)
        size = _field(obj, "size", int, 0, what)
        meta = cls(
            name=name,
            size=size,
            type=_field(obj, "type", str, "", what),
            is_folder=_field(obj, "isFolder", bool, False, what),
            stream_mode=_field(obj, "streamMode", bool, False, what),
            file_count=_field(obj, "fileCount", int, 0, what),
            compression=_field(obj, "compression", str, "", what),
        )
        meta.validate()
        return meta

    def validate(self) -> None:
        if self.name in ("", ".", ".."):
            raise RemoteProtocolError(f"invalid metadata: unusable name {self.name!r}")
        if "\x00" in self.name:
            raise RemoteProtocolError("invalid metadata: name contains a NUL byte")
        if len(self.name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise RemoteProtocolError(f"invalid metadata: name longer than {MAX_NAME_BYTES} bytes")
        if not 0 <= self.size < (1 << 63):
            raise RemoteProtocolError("invalid metadata: size out of range")
        if not 0 <= self.file_count <= MAX_FILE_COUNT:
            raise RemoteProtocolError("invalid metadata: file count out of range")
        if self.compression not in ("", "zstd"):
            raise RemoteProtocolError(f"unsupported compression {self.compression[:20]!r}")


@record(frozen=True)
class Totals:
    """Body of Done (sender's view) and Complete (receiver's view)."""

    total_bytes: int
    chunk_count: int
    sha256: str

    def to_json(self) -> bytes:
        return _dumps(
            {"totalBytes": self.total_bytes, "chunkCount": self.chunk_count, "sha256": self.sha256}
        )

    @classmethod
    def from_json(cls, body: bytes, what: str = "done") -> Totals:
        obj = _loads(body, what)
        totals = cls(
            total_bytes=_field(obj, "totalBytes", int, 0, what),
            chunk_count=_field(obj, "chunkCount", int, 0, what),
            sha256=_field(obj, "sha256", str, "", what).lower(),
        )
        if totals.total_bytes < 0 or totals.chunk_count < 0:
            raise RemoteProtocolError(f"malformed {what}: negative totals")
        if not _SHA256_HEX.fullmatch(totals.sha256):
            raise RemoteProtocolError(f"malformed {what}: sha256 is not 64 hex digits")
        return totals


def error_body(message: str) -> bytes:
    body = _dumps({"message": message})
    while len(body) > MAX_CONTROL_SIZE:  # keep it inside the control limit, whole characters
        message = message[: len(message) * 3 // 4]
        body = _dumps({"message": message})
    return body


def parse_error_body(body: bytes) -> str:
    """The peer's error text (raw; the UI escapes it before display)."""
    try:
        obj = _loads(body, "error")
        msg = obj.get("message")
        if isinstance(msg, str):
            return msg
    except RemoteProtocolError:
        pass
    return "(malformed): " + body[:200].decode("utf-8", "replace")


def cancel_body(reason: CancelReason) -> bytes:
    return bytes([reason])


def parse_cancel_body(body: bytes) -> int:
    return body[0] if body else 0


_PROBE = struct.Struct(">Q")


def probe_body(unix_nanos: int) -> bytes:
    return _PROBE.pack(unix_nanos)


def parse_probe_body(body: bytes) -> int:
    if len(body) != _PROBE.size:
        raise RemoteProtocolError("malformed parallel probe")
    (value,) = _PROBE.unpack(body)
    return int(value)


def ready_body(count: int) -> bytes:
    return bytes([max(1, min(count, MAX_PARALLEL_STREAMS))])


def parse_ready_body(body: bytes) -> int:
    if len(body) != 1 or not 1 <= body[0] <= MAX_PARALLEL_STREAMS:
        raise RemoteProtocolError("malformed parallel ready")
    return body[0]

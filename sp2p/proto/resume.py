"""Resume-on-re-run extension: capability, frame bodies and rules (docs/protocol-extensions.md §1).

Announced as ``"resume": 1`` in both `crypto` payloads; used only for a single regular
file. Frames (JSON bodies, ≤ 4096 bytes, after Metadata):

    0x20 ResumeSource  S->R  {"size","mtimeNs","headSha256","tailSha256"}
    0x21 ResumeOffer   R->S  {"offset","prefixSha256"}
    0x22 ResumeAccept  S->R  {"offset"}    offered offset (prefix matched) or 0

The states that use them live in `sp2p.proto.transfer`; this module holds the bodies and
the checks on them, so each check exists once. Each body is a small record with to_json and
from_json over the field readers below (proto/heal.py's HealOffer has the same shape, by design:
one record per frame body).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from sp2p.errors import RemoteProtocolError
from sp2p.proto.messages import EMPTY_SHA256, Metadata, _dumps, _field, _loads
from sp2p.proto.sha import sha256
from sp2p.record import record

#: the version of the extension we speak (the `resume` field of `crypto`)
RESUME_VERSION: Final = 1
#: ResumeSource hashes this much of the file's head and of its tail
EDGE_BYTES: Final = 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_U63 = 1 << 63


def negotiated(ours: int, theirs: int) -> bool:
    """Both peers announced the extension."""
    return ours >= RESUME_VERSION and theirs >= RESUME_VERSION


def applies(meta: Metadata) -> bool:
    """The frames are used for a single regular file only (§1.2)."""
    return not meta.is_folder and not meta.stream_mode


def _hex(obj: dict[str, Any], key: str, what: str) -> str:
    value = str(_field(obj, key, str, "", what)).lower()
    if not _SHA256_HEX.fullmatch(value):
        raise RemoteProtocolError(f"malformed {what}: {key} is not 64 hex digits")
    return value


def _u63(obj: dict[str, Any], key: str, what: str) -> int:
    value = int(_field(obj, key, int, 0, what))
    if not 0 <= value < _U63:
        raise RemoteProtocolError(f"malformed {what}: {key} out of range")
    return value


@record(frozen=True)
class SourceIdentity:
    """Body of ResumeSource: which file the sender is sending."""

    size: int
    mtime_ns: int
    head_sha256: str
    tail_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "mtimeNs": self.mtime_ns,
            "headSha256": self.head_sha256,
            "tailSha256": self.tail_sha256,
        }

    def to_json(self) -> bytes:
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, body: bytes) -> SourceIdentity:
        what = "resume source"
        obj = _loads(body, what)
        mtime = int(_field(obj, "mtimeNs", int, 0, what))
        if not -_U63 <= mtime < _U63:
            raise RemoteProtocolError(f"malformed {what}: mtimeNs out of range")
        return cls(
            size=_u63(obj, "size", what),
            mtime_ns=mtime,
            head_sha256=_hex(obj, "headSha256", what),
            tail_sha256=_hex(obj, "tailSha256", what),
        )

    @classmethod
    def from_edges(cls, size: int, mtime_ns: int, head: bytes, tail: bytes) -> SourceIdentity:
        """From the first and last `EDGE_BYTES` (or fewer) bytes the caller read."""
        return cls(size, mtime_ns, sha256(head).hexdigest(), sha256(tail).hexdigest())

    def partial_key(self, name: str) -> str:
        """Name part of the receiver's partial: binds announced name, size and identity."""
        canon = json.dumps({"name": name, "source": self.to_dict()}, sort_keys=True, ensure_ascii=True)
        return str(sha256(canon.encode("ascii")).hexdigest()[:32])


@record(frozen=True)
class ResumeOffer:
    """Body of ResumeOffer: what the receiver already holds."""

    offset: int
    prefix_sha256: str = EMPTY_SHA256

    def to_json(self) -> bytes:
        return _dumps({"offset": self.offset, "prefixSha256": self.prefix_sha256})

    @classmethod
    def from_json(cls, body: bytes) -> ResumeOffer:
        what = "resume offer"
        obj = _loads(body, what)
        return cls(offset=_u63(obj, "offset", what), prefix_sha256=_hex(obj, "prefixSha256", what))


def accept_body(offset: int) -> bytes:
    """Body of ResumeAccept, and of HealAccept (the same `{"offset": n}`)."""
    return _dumps({"offset": offset})


def parse_accept(body: bytes, what: str = "resume accept") -> int:
    return _u63(_loads(body, what), "offset", what)

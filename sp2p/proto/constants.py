"""Protocol constants of sp2p v2 (client.md appendix A), copied exactly from the wire."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Final

PROTOCOL_VERSION: Final = 2
MIN_PROTOCOL_VERSION: Final = 1

SEED_BYTES: Final = 16
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
CONFIRM_BYTES: Final = 32
VERIFY_BYTES: Final = 4

#: largest plaintext a Data frame may carry after decompression (v1: 65536)
MAX_CHUNK_SIZE: Final = 262_144
#: largest frame payload L = 1 + 8 + ciphertext (v1: 262144)
MAX_FRAME_SIZE: Final = 524_288
#: largest JSON body of a control frame
MAX_CONTROL_SIZE: Final = 4096
#: sequence numbers 0 .. 2^32-1 are valid in each direction
NONCE_LIMIT: Final = 1 << 32
#: the AAD version byte is frozen at 1 in v1 and v2 (client.md §2.5)
AAD_VERSION: Final = 1
#: bytes of header before the ciphertext: u32 length, type, u64 seq
FRAME_HEADER: Final = 4 + 1 + 8
FRAME_OVERHEAD: Final = FRAME_HEADER + TAG_BYTES

TCP_MAGIC: Final = 0x53  #: 'S', primary symmetric-TCP handshake byte
SECONDARY_MAGIC: Final = 0x54  #: 'T', parallel-TCP secondary handshake byte
PREFER_TCP_THRESHOLD: Final = 64 * 1024 * 1024
MAX_PARALLEL_STREAMS: Final = 6

#: WebRTC data-channel messages never exceed this (browser/pion interop)
MAX_DC_MESSAGE: Final = 262_144


class MsgType(IntEnum):
    """Frame type byte (client.md §3.1)."""

    METADATA = 0x01
    DATA = 0x02
    DONE = 0x04
    COMPLETE = 0x05
    ERROR = 0x06
    FIN_ACK = 0x07
    HEARTBEAT = 0x08  #: v2
    CANCEL = 0x09  #: v2; accepted with a forward sequence gap
    PARALLEL_PROBE = 0x0A  #: v2 (0.2.0), 8-byte UnixNano timestamp, echoed
    PARALLEL_READY = 0x0B  #: v2 (0.2.0), 1-byte stream count
    # extensions, only after both peers announced them (docs/protocol-extensions.md)
    RESUME_SOURCE = 0x20  #: resume §1.3: S->R identity of the source file
    RESUME_OFFER = 0x21  #: resume §1.3: R->S offset + SHA-256 of the prefix held
    RESUME_ACCEPT = 0x22  #: resume §1.3: S->R offset the data starts at (offered or 0)
    HEAL_OFFER = 0x23  #: heal §2.6: R->S plaintext bytes and Data frames written so far
    HEAL_ACCEPT = 0x24  #: heal §2.6: S->R Data continues at this offset (== the offer)


class CancelReason(IntEnum):
    USER_ABORT = 0x01
    INTERNAL_ERROR = 0x02


class Role(StrEnum):
    SENDER = "sender"
    RECEIVER = "receiver"


class Transport(StrEnum):
    AUTO = "auto"
    TCP = "tcp"
    WEBRTC = "webrtc"

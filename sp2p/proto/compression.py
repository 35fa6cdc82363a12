"""Per-chunk zstd (client.md §3.6): each Data body is one complete, independent zstd frame.

The receiver must never produce more than MAX_CHUNK_SIZE bytes from one frame,
must not trust the frame header, and must treat trailing bytes after the frame
as an error (zstandard's one-shot API silently ignores them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sp2p.errors import RemoteProtocolError
from sp2p.proto.constants import FRAME_OVERHEAD, MAX_CHUNK_SIZE

if TYPE_CHECKING:  # loaded on first use: a receiver of uncompressed data never needs it (issue 12)
    import zstandard

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
#: a chunk is at most 256 KiB, so a larger window only serves an attacker's memory bill
MAX_WINDOW_SIZE: Final = 8 * 1024 * 1024
#: our 0-9 scale mapped to the zstd levels closest to Go's klauspost presets
_LEVELS: Final = {1: 1, 2: 1, 3: 3, 4: 3, 5: 7, 6: 7, 7: 7, 8: 11, 9: 11}
#: not a zstd level (zstd reads 0 as its default, 3): a stored frame, see stored_frame()
STORED: Final = 0
#: largest raw block a frame may hold (RFC 8878 §3.1.1.2.3, Block_Maximum_Size)
_MAX_BLOCK: Final = 128 * 1024
#: frame header descriptor: Single_Segment_flag, 4-byte Frame_Content_Size, no checksum/dict
_STORED_FHD: Final = b"\xa0"


def compress_bound(size: int) -> int:
    """The most bytes zstd ever writes for `size` input bytes (libzstd's ZSTD_COMPRESSBOUND)."""
    small = (_MAX_BLOCK - size) >> 11 if size < _MAX_BLOCK else 0
    return size + (size >> 8) + small


def chunk_limit(message_limit: int | None, *, compressed: bool) -> int:
    """The largest chunk whose Data frame still fits one message of `message_limit` bytes.

    On a WebRTC data channel (messages of at most 256 KiB) a frame of a full 256 KiB chunk
    goes as two messages, and the receiver joins them with a copy (the pages and the Go CLI
    read messages as a byte stream, so any chunk size up to MAX_CHUNK_SIZE is valid on the
    wire). A compressed body may grow by zstd's bound. None (TCP): MAX_CHUNK_SIZE.
    """
    if message_limit is None:
        return MAX_CHUNK_SIZE
    room = message_limit - FRAME_OVERHEAD
    size = min(MAX_CHUNK_SIZE, room)
    if compressed:
        size = min(size, room * 256 // 257)  # the bound is about size * 257/256: search nearby
        while size < MAX_CHUNK_SIZE and compress_bound(size + 1) <= room:
            size += 1
        while size > 1 and compress_bound(size) > room:
            size -= 1
    return max(1, size)


def zstd_level(level: int) -> int:
    if not 1 <= level <= 9:
        raise ValueError("compression level must be 1-9 (0 disables compression)")
    return _LEVELS[level]


def stored_frame(chunk: bytes) -> bytes:
    """`chunk` as one zstd frame of raw blocks (RFC 8878): a copy, no search. Any decoder reads it,
    and it declares its content size like the frames zstandard writes."""
    size = len(chunk)
    if size >= 1 << 32:
        raise ValueError("a stored frame holds less than 4 GiB")
    view = memoryview(chunk)
    parts: list[bytes | memoryview] = [ZSTD_MAGIC, _STORED_FHD, size.to_bytes(4, "little")]
    if size == 0:
        parts.append(b"\x01\x00\x00")  # one empty raw block, the last
    for start in range(0, size, _MAX_BLOCK):
        block = view[start : start + _MAX_BLOCK]
        last = start + len(block) >= size
        parts.append(((len(block) << 3) | int(last)).to_bytes(3, "little"))  # Block_Type 0: raw
        parts.append(block)
    return b"".join(parts)


class ChunkCompressor:
    """Compresses one chunk into one zstd frame. Not thread-safe: one per worker."""

    def __init__(self, level: int) -> None:
        import zstandard

        self._cctx = zstandard.ZstdCompressor(level=zstd_level(level), write_content_size=True)
        # Level 1 is cheap and, for incompressible data, zstd stores raw blocks quickly.
        self._fast = zstandard.ZstdCompressor(level=1, write_content_size=True)
        self._by_level: dict[int, zstandard.ZstdCompressor] = {}

    def compress(self, chunk: bytes, *, incompressible_hint: bool = False) -> bytes:
        ctx = self._fast if incompressible_hint else self._cctx
        return ctx.compress(chunk)

    def compress_at(self, chunk: bytes, level: int) -> bytes:
        """One frame at a raw zstd `level` (negative: faster), or a stored frame for STORED."""
        if level == STORED:
            return stored_frame(chunk)
        ctx = self._by_level.get(level)
        if ctx is None:
            import zstandard

            ctx = self._by_level[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
        return ctx.compress(chunk)


class ChunkDecompressor:
    """Bounded, strict decoder of one zstd frame per Data body."""

    def __init__(self, max_output: int = MAX_CHUNK_SIZE) -> None:
        import zstandard

        self._max = max_output
        self._dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)

    def decompress(self, body: bytes | memoryview) -> bytes:
        if bytes(body[:4]) != ZSTD_MAGIC:
            raise RemoteProtocolError("decompression failed: not a zstd frame")
        import zstandard

        try:
            declared = zstandard.get_frame_parameters(body).content_size
        except zstandard.ZstdError as exc:
            raise RemoteProtocolError(f"decompression failed: {exc}") from None
        if declared == zstandard.CONTENTSIZE_UNKNOWN:
            return self._decompress_unknown_size(body)
        if declared > self._max:
            raise RemoteProtocolError("decompressed chunk exceeds maximum size")
        # One-shot into a buffer of exactly the declared size: libzstd fails on more or fewer
        # bytes, and on anything after the frame. About a fifth less CPU than the streaming object.
        try:
            return self._dctx.decompress(body, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise RemoteProtocolError(f"decompression failed: {exc}") from None

    def _decompress_unknown_size(self, body: bytes | memoryview) -> bytes:
        import zstandard

        # Bounded one-shot first, so the streaming pass below cannot balloon.
        try:
            self._dctx.decompress(body, max_output_size=self._max)
        except zstandard.ZstdError as exc:
            raise RemoteProtocolError(f"decompression failed: {exc}") from None
        # The streaming pass is strict about truncation and trailing bytes.
        dobj = self._dctx.decompressobj(read_across_frames=False)
        try:
            out = dobj.decompress(body)
        except zstandard.ZstdError as exc:
            raise RemoteProtocolError(f"decompression failed: {exc}") from None
        if not dobj.eof:
            raise RemoteProtocolError("decompression failed: truncated zstd frame")
        if dobj.unused_data:
            raise RemoteProtocolError("decompression failed: trailing data after the zstd frame")
        if len(out) > self._max:
            raise RemoteProtocolError("decompressed chunk exceeds maximum size")
        return out

"""What the sender reads: one file, a planned tar stream, or stdin — always in full chunks (W4) of
256 KiB, or of the size the link asks for (a frame per WebRTC message)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import BinaryIO, Protocol

from sp2p.errors import LocalIOError
from sp2p.proto.constants import MAX_CHUNK_SIZE

#: a stream that has produced some bytes but then stalls this long sends what it has
STREAM_FLUSH_AFTER = 0.5


class _Reader(Protocol):
    def read(self, n: int) -> bytes: ...


class FullChunkSource:
    """Full chunks (MAX_CHUNK_SIZE unless asked for fewer) from any blocking reader that returns b""
    only at EOF."""

    def __init__(self, reader: _Reader, *, what: str, expected_size: int | None = None) -> None:
        self._reader = reader
        self._what = what
        self._expected = expected_size
        self._total = 0

    def read_chunk(self, size: int = MAX_CHUNK_SIZE) -> bytes | None:
        try:
            chunk = self._reader.read(size)
            if 0 < len(chunk) < size:
                # a short read mid-stream: top it up (rare for files, the rule for pipes)
                buf = bytearray(chunk)
                while len(buf) < size and (part := self._reader.read(size - len(buf))):
                    buf += part
                chunk = bytes(buf)
        except OSError as exc:
            raise LocalIOError(f"cannot read {self._what}: {exc.strerror or exc}") from exc
        self._total += len(chunk)
        expected = self._expected
        if expected is not None and (self._total > expected or (not chunk and self._total != expected)):
            raise LocalIOError(f"{self._what} changed size while it was being sent")
        return chunk


def open_file_source(path: str, size: int) -> tuple[FullChunkSource, BinaryIO]:
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise LocalIOError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return FullChunkSource(f, what=path, expected_size=size), f


class StreamSource:
    """stdin: fills chunks, but never sits on bytes for long when the producer stalls (W3)."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._fd = self._stream.fileno()
        self._pending = bytearray()
        self._first_pending_at = 0.0
        self._eof = False
        self._can_select = sys.platform != "win32"

    def read_chunk(self, size: int = MAX_CHUNK_SIZE) -> bytes | None:
        if not self._can_select:
            return FullChunkSource(self._stream, what="stdin").read_chunk(size)
        while len(self._pending) < size and not self._eof:
            wait = 1.0
            if self._pending:
                wait = self._first_pending_at + STREAM_FLUSH_AFTER - time.monotonic()
                if wait <= 0:
                    break
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select([self._fd], [], [], wait)
                if not ready:
                    if not self._pending:
                        return None
                    continue
            try:
                part = os.read(self._fd, size - len(self._pending))
            except OSError as exc:
                raise LocalIOError(f"cannot read stdin: {exc.strerror or exc}") from exc
            if not part:
                self._eof = True
                break
            if not self._pending:
                self._first_pending_at = time.monotonic()
            self._pending += part
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        if self._pending:
            self._first_pending_at = time.monotonic()
        return chunk

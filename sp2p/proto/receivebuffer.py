"""The one receive buffer every incremental reader of the core shares (h11's
``_receivebuffer.py`` shape), and the one ``NEED_DATA`` sentinel they return.

Readers (`sp2p.proto.frames.FrameDecoder`, `sp2p.proto.tar.TarParser`) append what
arrives with ``buf += data`` and take bytes off the front with `extract` (exactly n)
or `extract_at_most` (what the front piece holds, up to n). Large pieces are kept by
reference and handed out as views (no copy); small ones are gathered in one
bytearray, so a peer dribbling single bytes costs bytes, not an object per byte.
"""

from __future__ import annotations

from collections import deque
from typing import Final, final


@final
class NeedData:
    """Type of `NEED_DATA`: a reader has no whole event until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()

#: received pieces below this are copied into one buffer instead of being kept as views
SMALL_PIECE: Final = 16 * 1024


class ReceiveBuffer:
    """Bytes received and not yet consumed, in stream order."""

    __slots__ = ("_len", "_pieces", "_small")

    def __init__(self) -> None:
        #: large pieces, kept by reference, in stream order; all of them come before _small
        self._pieces: deque[memoryview] = deque()
        self._small = bytearray()
        self._len = 0

    def __iadd__(self, data: bytes | bytearray | memoryview) -> ReceiveBuffer:
        """Append `data`; a large piece is kept by reference, so do not change it later."""
        if len(data) < SMALL_PIECE:
            self._small += data
        else:
            if self._small:
                self._pieces.append(memoryview(bytes(self._small)))
                self._small.clear()
            self._pieces.append(memoryview(data).cast("B"))
        self._len += len(data)
        return self

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def peek(self, n: int) -> bytes | memoryview:
        """A buffer starting with the next min(n, len) bytes (it may hold more), not consumed."""
        pieces = self._pieces
        if pieces and len(pieces[0]) >= n:
            return pieces[0]
        out = bytearray()
        for piece in pieces:
            out += piece[: n - len(out)]
            if len(out) == n:
                return bytes(out)
        out += self._small[: n - len(out)]
        return bytes(out)

    def extract(self, n: int) -> memoryview:
        """The next n bytes (n <= len): a view when one large piece holds them all."""
        if n > self._len:
            raise ValueError(f"extract({n}) with {self._len} bytes buffered")
        self._len -= n
        pieces = self._pieces
        if pieces and len(pieces[0]) >= n:
            head = pieces[0]
            if len(head) == n:
                pieces.popleft()
            else:
                pieces[0] = head[n:]
            return head[:n]
        parts: list[bytes | memoryview] = []
        need = n
        while need and pieces:
            head = pieces.popleft()
            if len(head) > need:
                pieces.appendleft(head[need:])
                head = head[:need]
            parts.append(head)
            need -= len(head)
        if need:
            tail = self._extract_small(need)
            if not parts:
                return memoryview(tail)
            parts.append(tail)
        return memoryview(b"".join(parts))  # one copy, and no zero-filling first

    def extract_at_most(self, n: int) -> memoryview:
        """Up to n bytes from the front piece, never joining pieces; empty when nothing is buffered."""
        pieces = self._pieces
        if pieces:
            head = pieces[0]
            if len(head) <= n:
                pieces.popleft()
                piece = head
            else:
                pieces[0] = head[n:]
                piece = head[:n]
            self._len -= len(piece)
            return piece
        tail = self._extract_small(min(n, len(self._small)))
        self._len -= len(tail)
        return memoryview(tail)

    def _extract_small(self, n: int) -> bytes:
        # the temporary view is gone before the bytearray shrinks
        out = bytes(memoryview(self._small)[:n])
        del self._small[:n]
        return out

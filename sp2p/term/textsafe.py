"""Make peer-supplied text safe to print on a terminal (security-cases T10, C17).

A peer controls file names, tar member names and error strings. Printed raw, they
could move the cursor, rewrite earlier lines, set the window title, write the
clipboard (OSC 52), plant hyperlinks (OSC 8) or reorder text with bidi controls.
`escape_peer_text` returns text in which every such code point is spelled out
(``\\x1b``, ``\\u202e``), so the output contains no C0/C1 control, DEL, format (Cf),
separator, surrogate or unassigned code point; a backslash is doubled so escapes
stay unambiguous. The result is cut to `max_len` characters with a final ``…``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

#: Cc controls (C0, DEL, C1), Cf format (bidi, zero-width, BOM …), Zl/Zp separators,
#: Cs lone surrogates, Co private use, Cn unassigned
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
ELLIPSIS: Final = "\u2026"


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
        return ch
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_peer_text(text: str | bytes, max_len: int = 200) -> str:
    """Printable, single-line form of untrusted `text`, at most `max_len` characters.

    Bytes are decoded as UTF-8; invalid bytes appear as ``\\xNN``.
    """
    from_bytes = isinstance(text, bytes | bytearray | memoryview)
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", "surrogateescape")
    max_len = max(max_len, 1)
    out: list[str] = []
    length = 0
    for ch in text:
        # from bytes, a lone surrogate U+DC80..U+DCFF stands for a byte that was not UTF-8
        undecodable = from_bytes and 0xDC80 <= ord(ch) <= 0xDCFF
        piece = f"\\x{ord(ch) - 0xDC00:02x}" if undecodable else _escape_char(ch)
        if length + len(piece) > max_len:
            while out and length + 1 > max_len:
                length -= len(out.pop())
            out.append(ELLIPSIS)
            return "".join(out)
        out.append(piece)
        length += len(piece)
    return "".join(out)

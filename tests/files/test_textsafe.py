"""sp2p.term.textsafe: peer text can never drive the terminal (T10, C17)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sp2p.term.textsafe import ELLIPSIS, escape_peer_text

T10_NAMES = [
    "a\rb", "a\nb", "a\bb", "a\ab",
    "\x1b[1A\x1b[2K", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "\x1b]52;c;ZXZpbA==\x07",
    "\x9b31m", "\u202eexe.txt", "\u2066x\u2067y\u2068z\u2069", "zero\u200bwidth", "\ufeffbom",
    "\x1b]0;title\x07", "del\x7f", "line\u2028sep",
]


def assert_terminal_safe(text: str) -> None:
    """The T10 byte-class assertion on the UTF-8 the terminal would receive."""
    raw = text.encode("utf-8")
    assert not any(b < 0x20 or b == 0x7F for b in raw), text
    for ch in text:
        assert not 0x80 <= ord(ch) <= 0x9F
        assert unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"), text


@pytest.mark.parametrize("name", T10_NAMES)
def test_t10_names_are_escaped(name: str) -> None:
    out = escape_peer_text(name)
    assert_terminal_safe(out)
    assert out != name


def test_escape_forms() -> None:
    assert escape_peer_text("a\x1b[2Kb") == "a\\x1b[2Kb"
    assert escape_peer_text("x\u202ey") == "x\\u202ey"
    assert escape_peer_text("\U000e0041") == "\\U000e0041"  # tag character (Cf)
    assert escape_peer_text("C:\\dir") == "C:\\\\dir"
    assert escape_peer_text("héllo wörld 日本 🙂") == "héllo wörld 日本 🙂"


def test_invalid_utf8_bytes_and_surrogates() -> None:
    assert escape_peer_text(b"ok\xff\xfe\x1b") == "ok\\xff\\xfe\\x1b"
    assert escape_peer_text("lone\ud800") == "lone\\ud800"
    assert escape_peer_text(bytearray(b"\xc3\xa9")) == "é"


def test_c17_long_text_is_truncated() -> None:
    out = escape_peer_text("A" * 10_000_000)
    assert len(out) == 200 and out.endswith(ELLIPSIS)
    out = escape_peer_text("\x1b" * 1000, max_len=20)
    assert len(out) <= 20 and out.endswith(ELLIPSIS) and "\\x1b" in out
    assert escape_peer_text("short", max_len=5) == "short"
    assert escape_peer_text("longer", max_len=5) == "long" + ELLIPSIS


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()), st.integers(min_value=1, max_value=300))
def test_any_input_is_terminal_safe_and_bounded(text: str | bytes, max_len: int) -> None:
    out = escape_peer_text(text, max_len)
    assert_terminal_safe(out)
    assert len(out) <= max_len

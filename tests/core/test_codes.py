from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sp2p.errors import InvalidCodeError, Sp2pError, UsageError
from sp2p.proto.codes import (
    CODE_PATTERN,
    base62_decode,
    base62_encode,
    format_code,
    generate_seed,
    parse_code,
)

SEED = bytes.fromhex("deadbeefcafebabe0123456789abcdef")
CODE = "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"


@given(st.binary(min_size=16, max_size=16))
def test_base62_round_trip(seed: bytes) -> None:
    text = base62_encode(seed)
    assert len(text) <= 22
    assert base62_decode(text) == seed


def test_zero_and_leading_zero_bytes() -> None:
    assert base62_encode(bytes(16)) == "0"
    assert base62_decode("0") == bytes(16)
    assert base62_decode("00000000000000000000SYW7RiJxkEgOGusQGwp"[-19:]) == bytes(range(16))


def test_decode_rejects_bad_characters_and_overflow() -> None:
    with pytest.raises(ValueError, match="invalid base62"):
        base62_decode("abc-")
    with pytest.raises(ValueError, match="too large"):
        base62_decode("z" * 23)


def test_parse_plain_code_url_and_whitespace() -> None:
    for text in (CODE, f"  {CODE}\n", f"https://sp2p.example/r#{CODE}", f"http://h:8080/r#{CODE} "):
        parsed = parse_code(text)
        assert parsed.session_id == "k7m2x9ab"
        assert parsed.seed == SEED
        assert str(parsed) == CODE
    assert "redacted" in repr(parse_code(CODE))
    assert SEED.hex() not in repr(parse_code(CODE))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("k7m2x9ab", "SESSIONID-SEED"),
        ("k7m2x9ab-", "SESSIONID-SEED"),
        ("-6mBhJfNj3WXtM6Zyq83xdf", "SESSIONID-SEED"),
        ("k7m2x9a-6mBhJfNj3WXtM6Zyq83xdf", "8 characters"),
        ("K7M2X9AB-6mBhJfNj3WXtM6Zyq83xdf", "8 characters"),
        ("k7m2x9ab-6mBhJfNj3WXtM6Zyq83xd!", "'!' in the part after '-' is not a letter or digit"),
        ("k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf.", "'.' in the part after '-' is not a letter or digit"),
        ("k7m2x9ab-6mBhJfNj3W-tM6Zyq83xdf", "more than one"),
        ("k7m2x9ab-6mBhJfNj", "too short"),
        ("k7m2x9ab-" + "z" * 23, "longer than 22"),
        ("k7m2x9ab-zzzzzzzzzzzzzzzzzzzzzz", "too large"),
    ],
)
def test_malformed_codes_are_rejected_precisely(text: str, message: str) -> None:
    with pytest.raises(InvalidCodeError, match=message) as info:
        parse_code(text)
    # a core error in the Sp2pError tree; the CLI, not the core, makes it a usage error
    assert isinstance(info.value, Sp2pError) and not isinstance(info.value, UsageError)


@pytest.mark.parametrize("text", [
    "k7m2x9ab-6mBhJfNj3WX\ntM6Zyq83xdf", " k7m2x9ab -\t6mBhJfNj3WXtM6Zyq83xdf ",
    "https://sp2p.example/r#k7m2x9ab-6mBhJfNj3WXtM6\r\nZyq83xdf",
])
def test_whitespace_inside_a_code_is_dropped(text: str) -> None:
    """A code wrapped across lines (an e-mail, a chat) is the code, as the web page reads it."""
    assert parse_code(text) == parse_code("k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf")


def test_generated_codes_match_the_scrape_pattern() -> None:
    for _ in range(200):
        code = format_code("abcdefgh", generate_seed())
        # a seed may be short in base62, but not below 16 characters in practice
        assert CODE_PATTERN.fullmatch(code)
        assert parse_code(code).seed != bytes(16)

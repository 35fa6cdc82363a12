"""Seeds, base62 and the transfer code `SESSIONID-SEED` (client.md §1).

base62: the 16-byte seed is one big-endian integer written in the alphabet
0-9A-Za-z, most significant digit first, without padding (so short seeds are
legal and must not be zero-padded on the text side).
"""

from __future__ import annotations

import os
import re
from typing import Final

from sp2p.errors import InvalidCodeError
from sp2p.proto.constants import SEED_BYTES
from sp2p.record import record

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_INDEX = {c: i for i, c in enumerate(BASE62_ALPHABET)}
#: session ids (chosen by the server): 8 characters from 31 symbols (no 0, 1, i, l, o),
#: about 39.6 bits
SESSION_ID_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"
SESSION_ID_LENGTH: Final = 8
#: random bytes at or above this are rejected so that `byte % 31` stays uniform
_SESSION_ID_BYTE_LIMIT: Final = 256 - 256 % len(SESSION_ID_ALPHABET)
#: the longest base62 form of a 128-bit number
MAX_SEED_CHARS: Final = 22
#: a random 128-bit seed encodes to fewer than 16 characters with probability ~1e-10, so a
#: shorter seed text is a truncated copy, not a real code (we never zero-pad it into one)
MIN_SEED_CHARS: Final = 16
#: a code as it appears in text, for scraping and for validating pasted input
CODE_PATTERN: Final = re.compile(
    f"[{SESSION_ID_ALPHABET}]{{{SESSION_ID_LENGTH}}}-[{BASE62_ALPHABET}]{{{MIN_SEED_CHARS},{MAX_SEED_CHARS}}}"
)


def session_id_from_random(data: bytes) -> str | None:
    """Map random bytes to a session id by rejection sampling; None if `data` ran out."""
    chars: list[str] = []
    for byte in data:
        if byte >= _SESSION_ID_BYTE_LIMIT:
            continue
        chars.append(SESSION_ID_ALPHABET[byte % len(SESSION_ID_ALPHABET)])
        if len(chars) == SESSION_ID_LENGTH:
            return "".join(chars)
    return None


def generate_seed() -> bytes:
    return os.urandom(SEED_BYTES)


def base62_encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    if n == 0:
        return "0"
    digits: list[str] = []
    while n:
        n, r = divmod(n, 62)
        digits.append(BASE62_ALPHABET[r])
    return "".join(reversed(digits))


def base62_decode(text: str) -> bytes:
    """Decode to exactly 16 bytes (left-padded), as Go does.

    Raises:
        ValueError: a character outside the alphabet, or a value above 2^128-1.
    """
    n = 0
    for c in text:
        try:
            n = n * 62 + _BASE62_INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base62 character {c!r}") from None
    if n.bit_length() > SEED_BYTES * 8:
        raise ValueError("decoded seed too large")
    return n.to_bytes(SEED_BYTES, "big")


@record(frozen=True)
class TransferCode:
    session_id: str
    seed: bytes

    def __str__(self) -> str:
        return format_code(self.session_id, self.seed)

    def __repr__(self) -> str:  # never leak the seed into logs or tracebacks
        return f"TransferCode(session_id={self.session_id!r}, seed=<redacted>)"


def format_code(session_id: str, seed: bytes) -> str:
    return f"{session_id}-{base62_encode(seed)}"


def share_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/r#{code}"


def parse_code(text: str) -> TransferCode:
    """Parse a transfer code or a share URL (`…/r#CODE`), tolerating whitespace anywhere in the
    code (one wrapped across lines; the web page's parseCode does the same).

    Raises:
        InvalidCodeError: with a message that says what is wrong.
    """
    raw = text.strip()
    if "#" in raw:
        raw = raw.rsplit("#", 1)[1]
    raw = "".join(raw.split())
    if not raw:
        raise InvalidCodeError("invalid transfer code: it is empty")
    session_id, sep, seed_text = raw.partition("-")
    if not sep or not session_id or not seed_text:
        raise InvalidCodeError(
            "invalid transfer code: expected SESSIONID-SEED, e.g. k7m2x9ab-6mBhJfNj3WXtM6Zyq83xdf"
        )
    if len(session_id) != SESSION_ID_LENGTH or any(c not in SESSION_ID_ALPHABET for c in session_id):
        raise InvalidCodeError(
            "invalid transfer code: the part before '-' must be 8 characters of 2-9 and a-z (no i, l, o)"
        )
    if "-" in seed_text:
        raise InvalidCodeError("invalid transfer code: more than one '-'")
    # before the length: a code copied with the full stop after it is not "too long"
    stray = next((c for c in seed_text if c not in _BASE62_INDEX), None)
    if stray is not None:
        raise InvalidCodeError(
            f"invalid transfer code: {stray!r} in the part after '-' is not a letter or digit"
        )
    if len(seed_text) < MIN_SEED_CHARS:
        raise InvalidCodeError("invalid transfer code: the part after '-' is too short; was it cut off?")
    if len(seed_text) > MAX_SEED_CHARS:
        raise InvalidCodeError(
            f"invalid transfer code: the part after '-' is longer than {MAX_SEED_CHARS} characters"
        )
    try:
        seed = base62_decode(seed_text)
    except ValueError as exc:
        raise InvalidCodeError(f"invalid transfer code: {exc} in the part after '-'") from None
    return TransferCode(session_id, seed)

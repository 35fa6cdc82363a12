"""Transfer codes the tests make up."""

from __future__ import annotations

from sp2p.proto.codes import MAX_SEED_CHARS, base62_encode

#: a seed no sender draws in practice, written at full length: a receiver joins with it and
#: only key confirmation can tell (a shorter secret part is tried on the sender's preview
#: before the join instead: sp2p/flow/code_check.py)
_WRONG_SEED = base62_encode(b"\xff" * 16)
assert len(_WRONG_SEED) == MAX_SEED_CHARS


def wrong_code(code: str) -> str:
    """`code`'s session with a wrong secret part (full length, so the join goes ahead)."""
    session, _seed = code.split("-", 1)
    return f"{session}-{_WRONG_SEED}"

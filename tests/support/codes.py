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


#: the first byte of a seed whose base62 secret part is that long: 0xff.. is past 62**21, so 22
#: characters; 0x01.. is in [2**120, 2**121), so 21 (1 real seed in 8 is)
_FIRST_BYTE_FOR_LENGTH = {MAX_SEED_CHARS: 0xFF, MAX_SEED_CHARS - 1: 0x01}


def sender_main(secret_chars: int) -> tuple[str, str]:
    """`python -c ...` arguments running the real CLI with seeds whose secret part has
    `secret_chars` characters, so a test covers the branch it means, not 7 in 8 of the time."""
    first = _FIRST_BYTE_FOR_LENGTH[secret_chars]
    return ("-c", "import os, sys, sp2p.cli, sp2p.flow.send as s; "
                  f"s.generate_seed = lambda: bytes([{first}]) + os.urandom(15); sys.exit(sp2p.cli.main())")

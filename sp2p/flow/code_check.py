"""Before the join: a code whose secret part is shorter than most is tried on the sender's
encrypted preview, so a code cut off (or mistyped) is refused while the sender's session is
still unused. Joined, the server would pair us and only key confirmation would fail: exit 5
on both sides and the code used up.

Length alone cannot tell: base62 has no padding, so 1 real seed in 8 is 21 characters, not
22 (and one in 500 is 20), and Go codes of any of those lengths must keep working.
"""

from __future__ import annotations

from sp2p.config import share_base_url, signaling_url
from sp2p.errors import IntegrityError
from sp2p.proto.codes import MAX_SEED_CHARS, TransferCode, base62_encode

#: the check runs before the join; a server slower than this is left to the join to judge
CHECK_TIMEOUT = 2.0


def is_short(code: TransferCode) -> bool:
    """A secret part under full length, worth `seed_is_refused`'s request (a full-length one,
    the common case, costs none)."""
    return len(base62_encode(code.seed)) < MAX_SEED_CHARS


def seed_is_refused(server: str, code: TransferCode) -> bool:
    """True when the sender's preview does not open with the code's seed. No preview (a
    client or server without one, the server unreachable) or a blob no sender writes: False,
    join as ever. The server can also lie with a blob that fails to open, which this cannot
    tell from a wrong code: the CLI's message names both."""
    from sp2p.net.preview import fetch_file_info
    from sp2p.proto.fileinfo import could_be_file_info, decrypt_file_info

    blob = fetch_file_info(share_base_url(signaling_url(server)), code.session_id, timeout=CHECK_TIMEOUT)
    if blob is None or not could_be_file_info(blob):
        return False
    try:
        decrypt_file_info(code.seed, blob)
    except IntegrityError:
        return True
    return False

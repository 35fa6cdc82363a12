"""Small helpers tests share: file digests and a matching pair of session keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sp2p.proto.constants import Role
from sp2p.proto.keys import KeyPair, SessionKeys, derive_session_keys

SEED = bytes(range(16))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def session_keys(session_id: str = "abcdefgh") -> tuple[SessionKeys, SessionKeys]:
    """(sender's, receiver's) keys of one session, as both peers derive them."""
    s, r = KeyPair.generate(), KeyPair.generate()
    pubs = {"sender_pub": s.public, "receiver_pub": r.public}
    return (
        derive_session_keys(role=Role.SENDER, seed=SEED, session_id=session_id, private=s.private, **pubs),
        derive_session_keys(role=Role.RECEIVER, seed=SEED, session_id=session_id, private=r.private, **pubs),
    )

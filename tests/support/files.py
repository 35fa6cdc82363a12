"""Small helpers tests share: file digests and a matching pair of session keys."""

from __future__ import annotations

import contextlib
import hashlib
import os
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


def open_under(folder: Path) -> list[str]:
    """Files under `folder` this process holds open: asks about the test's own files instead of
    counting every descriptor of a process whose other threads open and close their own."""
    prefix = str(folder.resolve()) + os.sep
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own, another thread's)
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(prefix):
                held.append(target)
    return held


def tcp_connections_on(port: int) -> int:
    """Sockets this process holds open on local `port`, listeners aside (an in-process
    server's side of its connections; TIME_WAIT ones belong to no socket any more). Only this
    process's own: another process on the machine (a load generator binding 127.x.y.z source
    addresses, a parallel test) may hold a socket whose local port is the same number."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                held.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port and state != "0A" and inode in held:
                    count += 1  # 0A: LISTEN
    return count

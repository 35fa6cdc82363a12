"""Run inside a shaped network namespace (tests/net/webrtc_netns.py): one transfer, JSON
result, with the sender's DATA chunk size (M1/M2).

Usage: python3 -m tests.net.webrtc_loss_child MIB
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time

from tests.net.webrtc_pair import open_pair, read_exactly


def main() -> int:
    size = int(sys.argv[1]) * 1024 * 1024
    data = os.urandom(size)
    started = time.monotonic()
    with open_pair() as (snd, rcv, _):

        def write() -> None:
            for pos in range(0, size, 262144 + 13):  # frame-sized writes, each split in two
                snd.send(data[pos : pos + 262144 + 13])

        writer = threading.Thread(target=write)
        writer.start()
        got = read_exactly(rcv, size, timeout=60)
        writer.join()
        rcv.send(b"ok")
        reply = snd.recv(30)
        chunk_size = snd._sctp.__dict__.get("_sp2p_chunk_size")
    result = {
        "match": hashlib.sha256(got).digest() == hashlib.sha256(data).digest(),
        "reply": reply.decode(),
        "seconds": round(time.monotonic() - started, 2),
        "chunk_size": chunk_size,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

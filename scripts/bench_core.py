"""Core throughput on 256 KiB chunks: our seal/open vs raw AES-GCM, SHA-256, zstd.

Prints MB/s for each and the ratio of our frame sealing/opening to raw `cryptography`
AES-GCM measured in the same run (the core should add little over the primitive).
Sealing and opening run the way the pipelines do: frames sealed into reused buffers
(FramedChannel), received bytes decoded from 1 MiB pieces that cut frames anywhere, and
glibc told to keep freed buffers (link/memory.py).

    python3 scripts/bench_core.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.benchkit.inputs import LOG_LINE  # noqa: E402
from scripts.benchkit.rows import load_average  # noqa: E402
from sp2p.link.memory import keep_freed_memory  # noqa: E402
from sp2p.proto.compression import ChunkCompressor, ChunkDecompressor  # noqa: E402
from sp2p.proto.constants import MAX_CHUNK_SIZE, MsgType  # noqa: E402
from sp2p.proto.frames import FrameDecoder, FrameOpener, FrameSealer, SealedFrame  # noqa: E402

CHUNK = MAX_CHUNK_SIZE
ROUNDS = 400


def rate(fn: Callable[[], object], rounds: int = ROUNDS, size: int = CHUNK) -> float:
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = max(best, rounds * size / (time.perf_counter() - t) / 1e6)
    return best


def main() -> None:
    keep_freed_memory()
    key = os.urandom(32)
    data = os.urandom(CHUNK)
    text = b"".join(LOG_LINE % (i, i * 7 % 9999) for i in range(CHUNK // 60))[:CHUNK]
    raw = AESGCM(key)
    nonce = os.urandom(12)
    raw_seal = rate(lambda: raw.encrypt(nonce, data, b"0123456789"))
    sealer = FrameSealer(key)
    out = bytearray(CHUNK + 64)
    ours_seal = rate(lambda: sealer.seal_into(out, sealer.reserve(), MsgType.DATA, data))
    ct = raw.encrypt(nonce, data, b"0123456789")
    raw_open = rate(lambda: raw.decrypt(nonce, ct, b"0123456789"))
    stream = b"".join(FrameSealer(key).seal_at(i, MsgType.DATA, data) for i in range(ROUNDS))
    pieces = [stream[i : i + (1 << 20)] for i in range(0, len(stream), 1 << 20)]

    def open_all() -> None:
        dec, opener = FrameDecoder(), FrameOpener(key)
        opened = 0
        for piece in pieces:
            dec.receive_data(piece)
            while isinstance(sealed := dec.next_frame(), SealedFrame):
                opener.open(sealed)
                opened += 1
        assert opened == ROUNDS

    ours_open = rate(open_all, rounds=1, size=CHUNK * ROUNDS)
    sha = rate(lambda: hashlib.sha256(data).digest())
    comp = ChunkCompressor(3)
    fast = ChunkCompressor(1)
    z_text = comp.compress(text)
    rows = [
        ("raw AES-GCM seal", raw_seal),
        ("sp2p frame seal", ours_seal),
        ("raw AES-GCM open", raw_open),
        ("sp2p decode+open", ours_open),
        ("SHA-256", sha),
        ("zstd-3 compress (text)", rate(lambda: comp.compress(text), rounds=100)),
        ("zstd-1 compress (random)", rate(lambda: fast.compress(data), rounds=100)),
        ("zstd decompress (text, bounded)", rate(lambda: ChunkDecompressor().decompress(z_text), rounds=200)),
    ]
    for name, mbps in rows:
        print(f"{name:40s} {mbps:9.1f} MB/s")
    print(f"{'ratio seal sp2p/raw':40s} {ours_seal / raw_seal:9.2f}")
    print(f"{'ratio open sp2p/raw':40s} {ours_open / raw_open:9.2f}")
    print(load_average())


if __name__ == "__main__":
    main()

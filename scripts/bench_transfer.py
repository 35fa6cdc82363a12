"""sp2p send | receive on loopback vs a raw encrypted pipeline, measured in the same run.

Baseline: read file -> AES-256-GCM + SHA-256 -> loopback socket -> decrypt + SHA-256 -> write
file (optionally zstd per chunk), one thread per side. Then real `sp2p send`/`receive`
processes through a real sp2p-server. Prints MB/s of original bytes and sp2p/baseline.

    python3 scripts/bench_transfer.py [--mib 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sp2p.proto.compression import ChunkCompressor, ChunkDecompressor  # noqa: E402
from tests.e2e.harness import cli_env, finish, read_code, spawn  # noqa: E402
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server  # noqa: E402

CHUNK = 256 * 1024


def baseline(src: Path, dst: Path, level: int) -> float:
    key = os.urandom(32)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def receiver() -> None:
        conn, _ = srv.accept()
        aead, sha, dec = AESGCM(key), hashlib.sha256(), ChunkDecompressor()
        buf = bytearray()
        with conn, dst.open("wb") as out:
            seq = 0
            while True:
                while len(buf) < 4:
                    part = conn.recv(1 << 20)
                    if not part:
                        return
                    buf += part
                (n,) = struct.unpack_from(">I", buf)
                while len(buf) < 4 + n:
                    buf += conn.recv(1 << 20)
                ct = bytes(buf[4 : 4 + n])
                del buf[: 4 + n]
                body = aead.decrypt(seq.to_bytes(12, "big"), ct, None)
                seq += 1
                data = dec.decompress(body) if level else body
                sha.update(data)
                out.write(data)

    t = threading.Thread(target=receiver)
    t.start()
    start = time.perf_counter()
    aead, sha, comp = AESGCM(key), hashlib.sha256(), ChunkCompressor(level) if level else None
    with socket.create_connection(("127.0.0.1", port)) as conn, src.open("rb") as f:
        seq = 0
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            body = comp.compress(chunk) if comp else chunk
            ct = aead.encrypt(seq.to_bytes(12, "big"), body, None)
            seq += 1
            conn.sendall(struct.pack(">I", len(ct)) + ct)
    t.join()
    srv.close()
    return src.stat().st_size / (time.perf_counter() - start) / 1e6


def sp2p(src: Path, out: Path, env: dict[str, str], level: int) -> float:
    sender = spawn(["send", f"-compress={level}", str(src)], env)
    code = read_code(sender)
    start = time.perf_counter()
    receiver = spawn(["receive", "-output", str(out), code], env)
    r, s = finish(receiver, timeout=900), finish(sender, timeout=60)
    elapsed = time.perf_counter() - start
    if r.rc or s.rc:
        raise SystemExit(f"sp2p failed: {s.err[-500:]} {r.err[-500:]}")
    return src.stat().st_size / elapsed / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    args = ap.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        rnd, txt = tmp / "random.bin", tmp / "text.log"
        with rnd.open("wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
        line = b"2026-11-25T06:00:00Z INFO request id=%08d path=/api/v1/items status=200 bytes=%d\n"
        with txt.open("wb") as f:
            i = 0
            while f.tell() < size:
                f.write(b"".join(line % (i + k, (i + k) * 7 % 9999) for k in range(1000)))
                i += 1000
        server = start_server(*NO_LIMIT_FLAGS)
        try:
            home = tmp / "home"
            (home / ".config").mkdir(parents=True)
            env = cli_env(server.http_url, home)
            rows = [("random, -compress 0", rnd, 0), ("random, default level", rnd, 3),
                    ("text, default level", txt, 3)]
            print(f"{'case':28s} {'baseline MB/s':>14s} {'sp2p MB/s':>10s} {'ratio':>6s}")
            for name, src, level in rows:
                out = tmp / f"out-{level}-{src.stem}"
                out.mkdir()
                base = baseline(src, tmp / "base.out", level)
                (tmp / "base.out").unlink()
                ours = sp2p(src, out, env, level)
                for p in out.iterdir():
                    p.unlink()
                print(f"{name:28s} {base:14.1f} {ours:10.1f} {ours / base:6.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

"""sp2p send | receive on loopback vs a raw encrypted pipeline, measured in the same run.

Baseline (per case, same file): the plain encrypted pipeline this machine can run in Python,
two threads per side with reused buffers, one process per side like sp2p:

    sender:   [read file + SHA-256] -> [zstd (level > 0) + AES-256-GCM + socket send]
    receiver: [socket recv + AES-256-GCM open + zstd decompress] -> [SHA-256 + write file]

Then real `sp2p send` / `sp2p receive` processes through a real sp2p-server. Figures are MB/s
(10^6 bytes) of original bytes: "sp2p" is the transfer itself (from Metadata to Complete as the
receiver reports it), "e2e" also counts process start, signaling and key exchange.
Random data at the default level: the baseline compresses every chunk as the level says,
while sp2p samples the first chunk and sends incompressible input without zstd (W4), so
read that row against the -compress 0 baseline as well.
The ratios are sp2p / baseline and e2e / baseline; each figure is the best of --repeat runs, "cpu s" the least
CPU time (user + system) both sp2p processes used. With --wormhole VENV, magic-wormhole from that venv
(local mailbox + transit relay on loopback) runs on the same files too.

    python3 scripts/bench_transfer.py [--mib 1024] [--cases 0,3,text] [--repeat 2] [--wormhole /tmp/wh-venv]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.benchkit.cli import LoopbackPair  # noqa: E402
from scripts.benchkit.inputs import write_log, write_random  # noqa: E402
from scripts.benchkit.rows import interleaved, load_average  # noqa: E402
from sp2p.proto.compression import ChunkCompressor, ChunkDecompressor  # noqa: E402

CHUNK = 256 * 1024
DEPTH = 16
_HDR = struct.Struct(">IQ")  # length of ciphertext+tag, sequence number


def _stage(target: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def baseline(src: Path, dst: Path, level: int) -> float:
    """MB/s of the two-threads-per-side encrypted pipeline over a loopback socket.

    Written to be hard to beat in Python: buffers are reused (readinto, encrypt_into,
    recv_into, decrypt_into), so nothing is copied or allocated per chunk that need not be.
    """
    key = os.urandom(32)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    free_in: queue.Queue[bytearray] = queue.Queue()
    free_out: queue.Queue[bytearray] = queue.Queue()
    for _ in range(DEPTH + 2):
        free_in.put(bytearray(CHUNK))
        free_out.put(bytearray(CHUNK))
    to_send: queue.Queue[tuple[bytearray, int] | None] = queue.Queue(DEPTH)
    to_write: queue.Queue[tuple[bytearray | bytes, int] | None] = queue.Queue(DEPTH)
    digests: dict[str, str] = {}

    def read_hash() -> None:
        sha = hashlib.sha256()
        with src.open("rb", buffering=0) as f:
            while True:
                buf = free_in.get()
                n = f.readinto(buf)
                if not n:
                    break
                sha.update(memoryview(buf)[:n])
                to_send.put((buf, n))
        to_send.put(None)
        digests["sent"] = sha.hexdigest()

    def seal_send(conn: socket.socket) -> None:
        aead = AESGCM(key)
        comp = ChunkCompressor(level) if level else None
        frame = bytearray(_HDR.size + 2 * CHUNK)
        seq = 0
        with conn:
            while (item := to_send.get()) is not None:
                buf, n = item
                body: bytes | memoryview = comp.compress(bytes(buf[:n])) if comp else memoryview(buf)[:n]
                end = _HDR.size + len(body) + 16
                _HDR.pack_into(frame, 0, len(body) + 16, seq)
                aead.encrypt_into(seq.to_bytes(12, "big"), body, None, memoryview(frame)[_HDR.size : end])
                free_in.put(buf)
                conn.sendall(memoryview(frame)[:end])
                seq += 1

    def recv_open(conn: socket.socket) -> None:
        aead, dec = AESGCM(key), ChunkDecompressor()
        ring = bytearray(4 << 20)
        view = memoryview(ring)
        start = end = seq = 0
        with conn:
            while True:
                if end - start >= _HDR.size:
                    n, _ = _HDR.unpack_from(ring, start)
                    if end - start >= _HDR.size + n:
                        ct = view[start + _HDR.size : start + _HDR.size + n]
                        start += _HDR.size + n
                        nonce = seq.to_bytes(12, "big")
                        seq += 1
                        if level:
                            to_write.put((dec.decompress(aead.decrypt(nonce, ct, None)), 0))
                        else:
                            out = free_out.get()
                            aead.decrypt_into(nonce, ct, None, memoryview(out)[: n - 16])
                            to_write.put((out, n - 16))
                        continue
                if start and len(ring) - end < _HDR.size + 2 * CHUNK:
                    ring[: end - start] = ring[start:end]  # less than one frame moves
                    start, end = 0, end - start
                got = conn.recv_into(view[end:])
                if not got:
                    to_write.put(None)
                    return
                end += got

    def hash_write() -> None:
        sha = hashlib.sha256()
        with dst.open("wb", buffering=0) as out:
            while (item := to_write.get()) is not None:
                data, n = item
                chunk = memoryview(data)[:n] if n else data
                sha.update(chunk)
                out.write(chunk)
                if isinstance(data, bytearray):
                    free_out.put(data)
        digests["received"] = sha.hexdigest()

    # one process per peer, as with sp2p: four threads under one GIL would measure the GIL
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    srv.close()
    start = time.perf_counter()
    sender = _fork(lambda: _run_stages([read_hash, lambda: seal_send(client)], digests, "sent"), conn)
    receiver = _fork(lambda: _run_stages([lambda: recv_open(conn), hash_write], digests, "received"), client)
    client.close()
    conn.close()
    sent, received = _reap(sender), _reap(receiver)
    elapsed = time.perf_counter() - start
    if not sent or sent != received:
        raise SystemExit(f"baseline failed: sent {sent!r}, received {received!r}")
    return src.stat().st_size / elapsed / 1e6


def _run_stages(stages: list[Callable[[], None]], digests: dict[str, str], which: str) -> str:
    errors: list[BaseException] = []
    for t in [_stage(stage, errors) for stage in stages]:
        t.join()
    if errors:
        raise errors[0]
    return digests[which]


def _fork(body: Callable[[], str], other_end: socket.socket) -> tuple[int, int]:
    """Run `body` in a child process; (pid, fd to read its one-line result from)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        other_end.close()  # else the peer never sees end of stream
        code = 1
        try:
            os.write(w, body().encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported through the exit code
            print(f"baseline peer failed: {exc!r}", file=sys.stderr)
        os._exit(code)
    os.close(w)
    return pid, r


def _reap(child: tuple[int, int]) -> str:
    pid, fd = child
    with os.fdopen(fd, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return out if status == 0 else ""


class Wormhole:
    """magic-wormhole from its own venv, with a local mailbox and transit relay on loopback."""

    def __init__(self, venv: Path, tmp: Path) -> None:
        self.bin = venv / "bin"
        self.tmp = tmp
        mport, tport = _free_port(), _free_port()
        self.mailbox = f"ws://127.0.0.1:{mport}/v1"
        self.relay = f"tcp:127.0.0.1:{tport}"
        self.procs = [
            subprocess.Popen(
                [str(self.bin / "twistd"), "-n", "--pidfile", "", "wormhole-mailbox",
                 f"--port=tcp:{mport}:interface=127.0.0.1", "--channel-db", str(tmp / "mailbox.db")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
            ),
            subprocess.Popen(
                [str(self.bin / "twistd"), "-n", "--pidfile", "", "transitrelay",
                 f"--port=tcp:{tport}:interface=127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
            ),
        ]
        for port in (mport, tport):
            _wait_port(port)

    def run(self, src: Path, out: Path) -> float:
        common = [str(self.bin / "wormhole"), "--relay-url", self.mailbox, "--transit-helper", self.relay]
        sender = subprocess.Popen(
            [*common, "send", "--code", "7-bench-run", str(src)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.tmp,
        )
        time.sleep(1.0)  # let the sender claim the nameplate first
        start = time.perf_counter()
        rc = subprocess.run(
            [*common, "receive", "--accept-file", "-o", str(out / src.name), "7-bench-run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.tmp, timeout=900, check=False,
        ).returncode
        elapsed = time.perf_counter() - start
        sender.wait(timeout=60)
        if rc or sender.returncode:
            raise SystemExit("wormhole transfer failed")
        return src.stat().st_size / elapsed / 1e6

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024, help="size of each input (MiB)")
    ap.add_argument("--cases", default="0,3,text", help="comma list of: 0 (random, -compress 0), "
                    "3 (random, default level), text (text, default level)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the best counts "
                    "(the cores are shared, so a single run mostly measures the neighbours)")
    ap.add_argument("--wormhole", type=Path, help="venv with magic-wormhole and its servers")
    args = ap.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        rnd, txt = write_random(tmp / "random.bin", size), write_log(tmp / "text.log", size)
        cases = {"0": ("random, -compress 0", rnd, 0), "3": ("random, default level", rnd, 3),
                 "text": ("text, default level", txt, 3)}
        worm = Wormhole(args.wormhole, tmp) if args.wormhole else None
        try:
            with LoopbackPair(tmp / "home") as pair:
                cols = ("baseline", 9), ("sp2p", 7), ("ratio", 6), ("e2e", 7), ("ratio", 6), ("cpu s", 6)
                head = f"{'case':24s}" + "".join(f" {c:>{w}s}" for c, w in cols)
                print(f"{load_average()} at the start")
                print(head + (f" {'wormhole':>9s}" if worm else "") + "   (MB/s)", flush=True)
                for key in args.cases.split(","):
                    name, src, level = cases[key]

                    def measure(which: str, src: Path = src, level: int = level) -> tuple[float, ...]:
                        if which == "baseline":
                            try:
                                return baseline(src, tmp / "base.out", level), 0.0, 0.0
                            finally:
                                (tmp / "base.out").unlink(missing_ok=True)
                        run = pair.transfer(src, f"-compress={level}")
                        return run.rate, run.end_to_end, run.cpu

                    # interleaved, so both see the same neighbours; the best run counts
                    runs = interleaved(args.repeat, ("baseline", "sp2p"), measure)
                    base = max(r[0] for r in runs["baseline"])
                    ours, e2e = max(r[0] for r in runs["sp2p"]), max(r[1] for r in runs["sp2p"])
                    cpu = min(r[2] for r in runs["sp2p"])
                    line = (f"{name:24s} {base:9.1f} {ours:7.1f} {ours / base:6.2f} "
                            f"{e2e:7.1f} {e2e / base:6.2f} {cpu:6.2f}")
                    if worm:
                        out = tmp / "out"
                        out.mkdir()
                        line += f" {worm.run(src, out):9.1f}"
                        shutil.rmtree(out)
                    print(line, flush=True)
                print(f"{load_average()} at the end")
        finally:
            if worm:
                worm.stop()


if __name__ == "__main__":
    main()

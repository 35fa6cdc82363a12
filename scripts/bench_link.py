#!/usr/bin/env python3
"""Throughput over an emulated 70 ms RTT link (root only; builds network namespaces).

    python3 scripts/bench_link.py [--size-mib 256] [--delay-ms 35] [--no-sp2p]

Topology (tests/netlab): h1 (sender) hangs off router r1 by a user-space delay line of
--delay-ms each way; h2 (receiver) sits on r1's LAN; sp2p-server runs in pub. Every figure is
measured in this run, per TCP buffer profile, and every row prints its ratio against the best
raw TCP row of the same profile:

  raw TCP          python sockets, one connection, h1 -> h2, --size-mib bytes; once with
                   autotuned buffers, once with sp2p's SO_SNDBUF/SO_RCVBUF request
  sp2p TCP x1      `sp2p send -transport tcp -parallel 1`         (hook: sp2p_transfer)
  sp2p TCP par     `sp2p send -transport tcp` (RTT-chosen streams) (hook: sp2p_transfer)
  sp2p WebRTC      `sp2p send -transport webrtc`                  (hook: sp2p_transfer)

Raw TCP is timed from accept to EOF; sp2p rows from the first received byte on disk to the
receiver's exit (their total time including signalling and connect is shown beside them).

sp2p rows print "n/a (reason)" while the CLI or server cannot do the transfer yet.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.netlab import Lab  # noqa: E402

try:  # the same SO_SNDBUF/SO_RCVBUF request sp2p's TCP channel makes
    from sp2p.net.tcp import SOCKET_BUFFER as SP2P_SOCKET_BUFFER
except ImportError:  # pragma: no cover - keeps the raw rows usable on their own
    SP2P_SOCKET_BUFFER = 8 << 20

MiB = 1024 * 1024
#: TCP buffer profiles applied to both hosts' namespaces (tcp_wmem/tcp_rmem are per netns)
PROFILES: dict[str, dict[str, str]] = {
    "default buffers": {},
    "tcp_wmem max 32 MiB": {"net.ipv4.tcp_wmem": f"4096 16384 {32 * MiB}"},
    "tcp_wmem+rmem max 32 MiB": {
        "net.ipv4.tcp_wmem": f"4096 16384 {32 * MiB}",
        "net.ipv4.tcp_rmem": f"4096 131072 {32 * MiB}",
    },
}
CODE_RE = re.compile(r"\b([23456789abcdefghjkmnpqrstuvwxyz]{8}-[0-9A-Za-z]{1,22})\b")
SENDER, RECEIVER = "h1", "h2"


@dataclass
class Row:
    name: str
    bytes_per_s: float | None
    note: str = ""


# ------------------------------------------------------------------------ raw TCP


def raw_tcp(lab: Lab, size: int, sock_buffer: int | None = None) -> float:
    """One Python TCP connection h1 -> h2 carrying `size` bytes; receiver-side bytes/s.

    `sock_buffer`: request SO_SNDBUF/SO_RCVBUF like sp2p does (the kernel caps the request at
    net.core.[wr]mem_max, 4 MiB and not raisable inside a namespace, then doubles it); None
    leaves both to autotuning, bounded by tcp_wmem/tcp_rmem.
    """
    port = 5201

    def tune(s: socket.socket) -> socket.socket:
        if sock_buffer:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sock_buffer)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sock_buffer)
        return s

    def make_listener() -> socket.socket:
        s = tune(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((lab.ip(RECEIVER), port))
        s.listen()
        return s

    listener = lab.call(RECEIVER, make_listener)

    def receive() -> tuple[int, float]:
        conn, _ = listener.accept()
        start = time.perf_counter()
        buf = bytearray(4 * MiB)
        got = 0
        with conn:
            while n := conn.recv_into(buf):
                got += n
        return got, time.perf_counter() - start

    def send() -> None:
        block = memoryview(os.urandom(MiB))
        with tune(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.connect((lab.ip(RECEIVER), port))
            left = size
            while left > 0:
                n = min(left, len(block))
                s.sendall(block[:n])
                left -= n

    try:
        rx = lab.submit(RECEIVER, receive)
        lab.submit(SENDER, send).result(timeout=600)
        got, elapsed = rx.result(timeout=600)
    finally:
        listener.close()
    if got != size:
        raise RuntimeError(f"raw TCP received {got} of {size} bytes")
    return got / elapsed


# ------------------------------------------------------------------------ sp2p hooks
# HOOK (lead): these build the sp2p command lines; adjust flags here once the CLI settles.


def sp2p_send_argv(server_url: str, path: Path, *, transport: str, parallel: int) -> list[str]:
    return ["sp2p", "send", "-server", server_url, "-transport", transport,
            "-parallel", str(parallel), "-compress", "0", str(path)]  # fmt: skip


def sp2p_receive_argv(
    server_url: str, code: str, outdir: Path, *, transport: str, parallel: int
) -> list[str]:
    return ["sp2p", "receive", "-server", server_url, "-transport", transport,
            "-parallel", str(parallel), "-output", str(outdir), code]  # fmt: skip


def sp2p_transfer(
    lab: Lab, server_url: str, src: Path, *, transport: str, parallel: int
) -> tuple[float, float]:
    """HOOK (lead): one sp2p send/receive h1 -> h2; returns (bytes/s, total seconds).

    bytes/s covers the data phase: from the first received byte on disk (any file under the
    output folder, temp names included) to the receiver's exit, so signalling and connection
    setup do not count; raw TCP is timed the same way (accept -> EOF). Total seconds run from
    the receiver's start. Raises on any failure; the caller prints "n/a (reason)".
    """
    outdir = Path(tempfile.mkdtemp(dir=lab.workdir, prefix=f"out-{transport}-{parallel}-"))
    send_argv = sp2p_send_argv(server_url, src, transport=transport, parallel=parallel)
    sender = lab.run(SENDER, send_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sender_out = _drain(sender)
    try:
        code = _wait_code(sender, sender_out, timeout=30)
        recv_argv = sp2p_receive_argv(
            server_url, code, outdir, transport=transport, parallel=parallel
        )
        start = time.perf_counter()
        first_byte = _watch_first_byte(outdir)
        out = lab.check_output(RECEIVER, recv_argv, timeout=900)
        end = time.perf_counter()
        if sender.wait(timeout=60) != 0:
            raise RuntimeError(f"sender exited {sender.returncode}: {b''.join(sender_out)[-200:]!r}")
    finally:
        lab.stop(sender)
    got = outdir / src.name
    intact = got.exists() and _sha256(got) == _sha256(src)
    shutil.rmtree(outdir, ignore_errors=True)
    if not intact:
        raise RuntimeError(f"received file missing or different; receiver said: {out[-300:]}")
    data_start = first_byte.result(timeout=1) or start
    return src.stat().st_size / (end - data_start), end - start


def _drain(proc: subprocess.Popen[bytes]) -> list[bytes]:
    """Keep reading the process's output so progress lines never fill the pipe."""
    lines: list[bytes] = []

    def run() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.append(line)

    threading.Thread(target=run, daemon=True).start()
    return lines


def _wait_code(sender: subprocess.Popen[bytes], lines: list[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if m := CODE_RE.search(b"".join(lines).decode(errors="replace")):
            return m.group(1)
        if sender.poll() is not None:
            raise RuntimeError(f"sender exited before printing a code: {b''.join(lines)[-300:]!r}")
        time.sleep(0.02)
    raise RuntimeError(f"no transfer code within {timeout:g} s")


def _watch_first_byte(outdir: Path) -> Future[float | None]:
    """perf_counter() when any file under `outdir` first holds data (None if never seen)."""
    fut: Future[float | None] = Future()

    def run() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            for root, _, files in os.walk(outdir):
                for name in files:
                    try:
                        if os.stat(os.path.join(root, name)).st_size > 0:
                            fut.set_result(time.perf_counter())
                            return
                    except OSError:
                        pass
            time.sleep(0.005)
        fut.set_result(None)

    threading.Thread(target=run, daemon=True).start()
    return fut


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------ driver


def try_row(name: str, fn: Callable[[], float | tuple[float, float]]) -> Row:
    try:
        result = fn()
        if isinstance(result, tuple):
            return Row(name, result[0], f"(total {result[1]:.1f} s incl. signalling/connect)")
        return Row(name, result)
    except Exception as exc:  # noqa: BLE001 - a benchmark row reports, never aborts the run
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [""]
        rc = re.search(r"-> rc -?\d+", lines[0])
        why = (f"{rc.group(0)[3:]}: " if rc else "") + lines[-1][:140]
        return Row(name, None, f"n/a ({type(exc).__name__} {why})")


def measure_rtt_ms(lab: Lab) -> float:
    lab.check_output(SENDER, ["ping", "-c1", "-W3", lab.ip(RECEIVER)])  # warm-up (ARP)
    out = lab.check_output(SENDER, ["ping", "-c5", "-i0.2", "-W3", lab.ip(RECEIVER)])
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


def start_sp2p_server(lab: Lab) -> tuple[str | None, str]:
    if shutil.which("sp2p-server") is None or shutil.which("sp2p") is None:
        return None, "sp2p / sp2p-server not on PATH"
    try:
        return lab.start_server(timeout=20).url, ""
    except Exception as exc:  # noqa: BLE001
        return None, f"sp2p-server did not start: {str(exc).splitlines()[0][:100]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256, help="bytes per transfer (MiB)")
    ap.add_argument("--delay-ms", type=float, default=35.0, help="one-way delay (RTT = 2x)")
    ap.add_argument("--no-sp2p", action="store_true", help="raw TCP rows only")
    ap.add_argument("--no-offload", action="store_true",
                    help="delay line without TSO: per-1500-byte packets (~100 MB/s ceiling)")
    ap.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated profile names")
    ap.add_argument("-v", "--verbose", action="store_true", help="print server/process logs at exit")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_link: needs root (network namespaces)", file=sys.stderr)
        return 2
    size = args.size_mib * MiB
    with Lab.create(same_lan=True, delay_ms=args.delay_ms, delay_host=SENDER,
                    delay_offload=not args.no_offload) as lab:
        lab.print_logs = args.verbose
        print(f"link: {SENDER} -> {RECEIVER}, ping RTT {measure_rtt_ms(lab):.1f} ms, "
              f"offload {'off' if args.no_offload else 'on'}, {args.size_mib} MiB per transfer")
        server_url, why = (None, "--no-sp2p") if args.no_sp2p else start_sp2p_server(lab)
        src = lab.workdir / "payload.bin"
        if server_url:
            with open(src, "wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(MiB))
        for host in (SENDER, RECEIVER):
            _defaults(lab, host)  # remember the originals before any profile changes them
        for profile in args.profiles.split(","):
            settings = PROFILES[profile]
            for host in (SENDER, RECEIVER):
                lab.sysctl(host, settings or _defaults(lab, host))
            rows = [
                try_row("raw TCP autotuned", lambda: raw_tcp(lab, size)),
                try_row("raw TCP sp2p bufs", lambda: raw_tcp(lab, size, SP2P_SOCKET_BUFFER)),
            ]
            for name, transport, parallel in (
                ("sp2p TCP x1", "tcp", 1),
                ("sp2p TCP parallel", "tcp", 0),
                ("sp2p WebRTC", "webrtc", 0),
            ):
                if server_url is None:
                    rows.append(Row(name, None, f"n/a ({why})"))
                    continue
                rows.append(try_row(name, lambda t=transport, p=parallel: sp2p_transfer(
                    lab, server_url, src, transport=t, parallel=p)))  # type: ignore[misc]
            print_rows(profile, rows)
    return 0


_DEFAULTS: dict[str, dict[str, str]] = {}


def _defaults(lab: Lab, host: str) -> dict[str, str]:
    """The namespace's original tcp_wmem/tcp_rmem, to restore before the default profile."""
    if host not in _DEFAULTS:
        keys = ("net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem")
        out = lab.check_output(host, ["sysctl", "-n", *keys])
        _DEFAULTS[host] = dict(zip(keys, (" ".join(v.split()) for v in out.splitlines()),
                                   strict=True))  # fmt: skip
    return _DEFAULTS[host]


def print_rows(profile: str, rows: list[Row]) -> None:
    """Ratios are against the best raw TCP row of the same profile."""
    raws = [r.bytes_per_s for r in rows if r.name.startswith("raw") and r.bytes_per_s]
    raw = max(raws) if raws else None
    print(f"\n[{profile}]")
    for row in rows:
        if row.bytes_per_s is None:
            print(f"  {row.name:<20} {row.note}")
            continue
        ratio = f"{row.bytes_per_s / raw:5.2f} x best raw" if raw else ""
        print(f"  {row.name:<20} {row.bytes_per_s / 1e6:8.1f} MB/s  {ratio}  {row.note}".rstrip())


if __name__ == "__main__":
    sys.exit(main())

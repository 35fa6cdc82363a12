#!/usr/bin/env python3
"""Throughput over an emulated 70 ms RTT link (root only; builds network namespaces).

    python3 scripts/bench_link.py [--size-mib 256] [--delay-ms 35] [--no-sp2p]

Topology (tests/netlab): h1 (sender) hangs off router r1 by a user-space delay line of
--delay-ms each way; h2 (receiver) sits on r1's LAN; sp2p-server runs in pub. Every figure is
measured in this run, per TCP buffer profile, and sp2p rows print their ratio against the raw
TCP row of the same profile:

  raw TCP          python sockets, one connection, h1 -> h2, --size-mib bytes
  sp2p TCP x1      `sp2p send -transport tcp -parallel 1`         (hook: sp2p_transfer)
  sp2p TCP par     `sp2p send -transport tcp` (RTT-chosen streams) (hook: sp2p_transfer)
  sp2p WebRTC      `sp2p send -transport webrtc`                  (hook: sp2p_transfer)

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.netlab import Lab  # noqa: E402

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


def raw_tcp(lab: Lab, size: int) -> float:
    """One Python TCP connection h1 -> h2 carrying `size` bytes; receiver-side bytes/s."""
    port = 5201
    listener = lab.call(RECEIVER, socket.create_server, (lab.ip(RECEIVER), port))

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
        with socket.create_connection((lab.ip(RECEIVER), port)) as s:
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
) -> float:
    """HOOK (lead): one sp2p send/receive h1 -> h2; returns bytes/s measured by the receiver.

    Timed from the receiver's start to its exit (includes signalling and connection setup).
    Raises on any failure; the caller prints "n/a (reason)".
    """
    outdir = lab.workdir / f"out-{transport}-{parallel}"
    outdir.mkdir()
    send_argv = sp2p_send_argv(server_url, src, transport=transport, parallel=parallel)
    sender = lab.run(SENDER, send_argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        code = _scrape_code(sender, timeout=30)
        recv_argv = sp2p_receive_argv(
            server_url, code, outdir, transport=transport, parallel=parallel
        )
        start = time.perf_counter()
        out = lab.check_output(RECEIVER, recv_argv, timeout=900)
        elapsed = time.perf_counter() - start
        if sender.wait(timeout=60) != 0:
            raise RuntimeError(f"sender exited {sender.returncode}")
    finally:
        lab.stop(sender)
        if sender.stdout:
            sender.stdout.close()
    got = outdir / src.name
    if not got.exists() or _sha256(got) != _sha256(src):
        raise RuntimeError(f"received file missing or different; receiver said: {out[-300:]}")
    return src.stat().st_size / elapsed


def _scrape_code(sender: subprocess.Popen[bytes], timeout: float) -> str:
    assert sender.stdout is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        line = sender.stdout.readline()
        if not line:
            raise RuntimeError(f"sender exited before printing a code: {seen[-300:]!r}")
        seen += line
        if m := CODE_RE.search(line.decode(errors="replace")):
            return m.group(1)
    raise RuntimeError("no transfer code within 30 s")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------ driver


def try_row(name: str, fn: Callable[[], float]) -> Row:
    try:
        return Row(name, fn())
    except Exception as exc:  # noqa: BLE001 - a benchmark row reports, never aborts the run
        return Row(name, None, f"n/a ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")


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
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_link: needs root (network namespaces)", file=sys.stderr)
        return 2
    size = args.size_mib * MiB
    with Lab.create(same_lan=True, delay_ms=args.delay_ms, delay_host=SENDER,
                    delay_offload=not args.no_offload) as lab:
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
            rows = [try_row("raw TCP", lambda: raw_tcp(lab, size))]
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
    raw = rows[0].bytes_per_s
    print(f"\n[{profile}]")
    for row in rows:
        if row.bytes_per_s is None:
            print(f"  {row.name:<20} {row.note}")
            continue
        ratio = f"{row.bytes_per_s / raw:5.2f} x raw" if raw else ""
        print(f"  {row.name:<20} {row.bytes_per_s / 1e6:8.1f} MB/s  {ratio}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Throughput over an emulated 70 ms RTT link (root only; builds network namespaces).

    python3 scripts/bench_link.py [--size-mib 256] [--webrtc-size-mib 48] [--delay-ms 35]
                                  [--parallel 4] [--profiles default,raised] [--only KINDS]
                                  [--runs N]

Topology (tests/netlab, same LAN): h1 (sender) hangs off router r1 by the user-space TUN
delay line (tests/netlab/delaylink.c, --delay-ms each way, TSO on), h2 (receiver) sits on
r1's LAN bridge, sp2p-server runs in pub. Every figure is measured in this run, receiver
side, in MB/s (10^6 bytes/s), with random (incompressible) data. Row kinds (--only):

  TCP sections, once with the namespaces' default TCP buffer sysctls and once with
  tcp_wmem/tcp_rmem max raised to 32 MiB in both hosts' namespaces:
    raw        raw TCP autotuned: one Python TCP connection h1 -> h2, kernel-autotuned
               buffers, timed from accept to EOF; and raw TCP sp2p sndbuf N: the same with
               the send buffer sp2p's TCP channel asks for (sp2p.net.tcp.fixed_send_buffer,
               only where it asks for one)
    pinned     (not by default) raw TCP with SO_SNDBUF and SO_RCVBUF at 8 MiB, as sp2p
               once pinned them
    tcp        sp2p TCP x1: `sp2p send|receive -transport tcp -parallel 1 -compress 0`
    parallel   sp2p TCP -parallel N: the same with `-parallel N` ("not available" when
               `sp2p send -help` does not offer -parallel)
  WebRTC section (UDP: the TCP sysctls do not apply), --webrtc-size-mib per transfer:
    aiortc     bare aiortc: stock aiortc data channel h1 -> h2 (no sp2p code, no STUN),
               256 KiB messages paced by bufferedAmount (scripts/benchkit/aiortc_peer.py, as in bench_webrtc)
    channel    (not by default) sp2p's WebRTCPeer + Channel with its SCTP tuning, no files
               and no encryption: the transport alone
    webrtc     sp2p WebRTC: `sp2p send|receive -transport webrtc -compress 0`

sp2p rows are timed from the first received byte on disk to the receiver's exit, so
signalling and connection setup do not count (their total is shown beside them); every
received file is compared with the source by SHA-256. TCP ratios are against the fastest
raw row of the section, WebRTC ratios against bare aiortc. Under each TCP row, `ss -tin`
on the sender tells what bounded it: the send buffer (sndbuf-limited), the receiver's
window (rwnd-limited) or neither (congestion window / the path). A row that cannot run
prints "n/a (reason)". The sp2p and aiortc rows are CPU-bound: other load on the machine
(its load average is printed) lowers them.

Length (~490 lines): one lab, its row kinds and their report; what other benches share
(rows, rounds, the lab setup, the stock aiortc peer) already lives in scripts/benchkit/.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
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
from concurrent.futures import Future, InvalidStateError
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.benchkit.aiortc_peer import stdio_peer  # noqa: E402
from scripts.benchkit.inputs import MiB, sha256_file, write_random  # noqa: E402
from scripts.benchkit.lab import RECEIVER, SENDER, SP2P, Lab, link_lab, start_server, tail, wait_code  # noqa: E402
from scripts.benchkit.rows import Row, best_rows, load_average, print_section, try_row  # noqa: E402

try:  # the rule sp2p's TCP channel uses for SO_SNDBUF, for the matching raw row
    from sp2p.net.tcp import fixed_send_buffer
except ImportError:  # pragma: no cover - an older checkout: autotuned rows only

    def fixed_send_buffer() -> int | None:
        return None


#: SO_SNDBUF, SO_RCVBUF of the "pinned" raw row (what sp2p's TCP channel once requested)
PINNED = (8 * MiB, 8 * MiB)
RAISED = {
    "net.ipv4.tcp_wmem": f"4096 16384 {32 * MiB}",
    "net.ipv4.tcp_rmem": f"4096 131072 {32 * MiB}",
}
TCP_KEYS = ("net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem")
ROW_KINDS = ("raw", "pinned", "tcp", "parallel", "aiortc", "channel", "webrtc")
DEFAULT_KINDS = ("raw", "tcp", "parallel", "aiortc", "webrtc")


# ------------------------------------------------------------------------ raw TCP


def raw_tcp(lab: Lab, size: int, sndbuf: int | None = None, rcvbuf: int | None = None) -> float:
    """One Python TCP connection h1 -> h2 carrying `size` bytes; receiver-side bytes/s.

    `sndbuf`/`rcvbuf`: SO_SNDBUF/SO_RCVBUF on both ends (the kernel caps a request at
    net.core.[wr]mem_max, then doubles it); None leaves that buffer to autotuning, bounded
    by tcp_wmem/tcp_rmem.
    """
    port = 5201

    def tune(s: socket.socket) -> socket.socket:
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
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


# ------------------------------------------------------------------------ bare aiortc


def data_channel(lab: Lab, size: int, mode: str = "stock") -> float:
    """A data channel h1 -> h2 moving `size` bytes (see benchkit.aiortc_peer.stdio_peer); receiver-side
    bytes/s from first to last byte."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--aiortc-peer"]
    peers: dict[str, subprocess.Popen[bytes]] = {}
    for role, host in (("sender", SENDER), ("receiver", RECEIVER)):
        with open(lab.workdir / f"aiortc-{mode}-{role}.log", "ab") as log:
            peers[role] = lab.run(host, [*argv, role, "--size-bytes", str(size), "--mode", mode],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)  # fmt: skip
    other = {"sender": "receiver", "receiver": "sender"}
    result: Future[tuple[float, float, int]] = Future()

    def pump(role: str) -> None:
        """Forward `role`'s signalling lines to the other peer; catch the receiver's result."""
        out, dest = peers[role].stdout, peers[other[role]].stdin
        assert out is not None
        assert dest is not None
        for line in out:
            tag, item = json.loads(line)
            if tag == "result":
                first, last, got = item
                with contextlib.suppress(InvalidStateError):
                    result.set_result((first, last, got))
                continue
            try:
                dest.write(json.dumps(item).encode() + b"\n")
                dest.flush()
            except OSError:
                return
        with contextlib.suppress(InvalidStateError):  # the other pump may have said so first
            result.set_exception(RuntimeError(f"aiortc {role} exited without a result"))

    for role in peers:
        threading.Thread(target=pump, args=(role,), daemon=True).start()
    try:
        first, last, got = result.result(timeout=600)
        for proc in peers.values():
            proc.wait(timeout=30)
    finally:
        for proc in peers.values():
            lab.stop(proc)
    if got < size:
        raise RuntimeError(f"aiortc received {got} of {size} bytes")
    return got / (last - first)


# ------------------------------------------------------------------------ sp2p


def sp2p_has_parallel() -> bool:
    out = subprocess.run([*SP2P, "send", "-help"], capture_output=True, text=True, check=False)
    return "-parallel" in out.stdout + out.stderr


def sp2p_transfer(
    lab: Lab, server_url: str, src: Path, *, transport: str, parallel: int | None
) -> tuple[float, float]:
    """One sp2p send/receive h1 -> h2; returns (bytes/s, total seconds).

    bytes/s covers the data phase: from the first received byte on disk (any file under the
    output folder, temp names included) to the receiver's exit, so signalling and connection
    setup do not count; raw TCP is timed the same way (accept -> EOF). Total seconds run from
    the receiver's start. Raises on any failure; the caller prints "n/a (reason)".
    """
    tag = f"{transport}-{parallel}"
    outdir = Path(tempfile.mkdtemp(dir=lab.workdir, prefix=f"out-{tag}-"))
    flags = ["-server", server_url, "-transport", transport]
    if parallel is not None:
        flags += ["-parallel", str(parallel)]
    sender = lab.run(SENDER, [*SP2P, "send", *flags, "-compress", "0", str(src)],
                     name=f"send-{tag}", start_new_session=True)  # fmt: skip
    try:
        code = wait_code(lab, sender)
        start = time.perf_counter()
        first_byte = _watch_first_byte(outdir)
        receiver = lab.run(RECEIVER, [*SP2P, "receive", *flags, "-output", str(outdir), code],
                           name=f"recv-{tag}", start_new_session=True)  # fmt: skip
        rc = receiver.wait(timeout=900)
        end = time.perf_counter()
        if rc != 0:
            raise RuntimeError(f"receiver exited {rc}: {tail(lab.output_of(receiver))}")
        if sender.wait(timeout=60) != 0:
            raise RuntimeError(f"sender exited {sender.returncode}: {tail(lab.output_of(sender))}")
    finally:
        lab.stop(sender)
    got = outdir / src.name
    intact = got.exists() and sha256_file(got) == sha256_file(src)
    shutil.rmtree(outdir, ignore_errors=True)
    if not intact:
        raise RuntimeError(f"received file missing or different; receiver: {tail(lab.output_of(receiver))}")
    data_start = first_byte.result(timeout=1) or start
    return src.stat().st_size / (end - data_start), end - start


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


# ------------------------------------------------------------------------ ss sampler


class SsSampler:
    """Samples `ss -tin` on the sender for its data connections to the receiver.

    Keeps, per connection, the last sample taken while it was established, so the figures
    describe the transfer's steady state: how many streams ran, and whether the sender was
    limited by its send buffer (sndbuf_limited), the receiver's window (rwnd_limited) or
    neither (then cwnd/pacing, i.e. the path). On the receiver it watches Recv-Q, the bytes
    the kernel holds that the application has not read yet: where that stays high, the
    receiving process (its CPU) is what closes the window.
    """

    FIELDS = re.compile(r"\b(cwnd|unacked|snd_wnd|rtt|busy|sndbuf_limited|rwnd_limited)"
                        r":([\d.]+)(?:ms\(([\d.]+)%\))?")  # fmt: skip

    def __init__(self, lab: Lab, period: float = 0.25) -> None:
        self.lab, self.period = lab, period
        self.last: dict[str, dict[str, float]] = {}
        self.unread: list[int] = []  #: receiver's total Recv-Q per sample, while data flowed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        dst = self.lab.ip(RECEIVER)
        while not self._stop.wait(self.period):
            out = self.lab.check_output(SENDER, ["ss", "-Htin", "state", "established", "dst", dst],
                                        check=False)  # fmt: skip
            lines = out.splitlines()
            for head, info in zip(lines[::2], lines[1::2], strict=False):
                conn = " ".join(head.split()[-2:])
                sample: dict[str, float] = {}
                for key, value, pct in self.FIELDS.findall(info):
                    sample[key] = float(pct) if pct else float(value)
                if m := re.search(r"bytes_acked:(\d+)", info):
                    sample["acked"] = float(m.group(1))
                prev = self.last.get(conn, {})
                for peak in ("cwnd", "unacked"):  # the tail of a transfer drains both
                    sample[peak] = max(sample.get(peak, 0.0), prev.get(peak, 0.0))
                self.last[conn] = sample
            out = self.lab.check_output(RECEIVER, ["ss", "-Htn", "state", "established", "dst",
                                                   self.lab.ip(SENDER)], check=False)  # fmt: skip
            queued = [int(f[0]) for f in (ln.split() for ln in out.splitlines()) if f and f[0].isdigit()]
            if queued and max(queued) > 0:
                self.unread.append(sum(queued))

    def summary(self) -> str:
        bulk = [s for s in self.last.values() if s.get("acked", 0) > MiB]  # skip handshake-only sockets
        if not bulk:
            return "ss: no data connection seen"

        def avg(key: str) -> float:
            return sum(s.get(key, 0.0) for s in bulk) / len(bulk)

        return (f"ss, sender, {len(bulk)} stream(s), per stream: peak cwnd {avg('cwnd'):.0f} pkts, "
                f"peak in flight {avg('unacked') * 1448 / 1e6:.1f} MB, peer window "
                f"{avg('snd_wnd') / 1e6:.1f} MB, sndbuf-limited {avg('sndbuf_limited'):.0f} %, "
                f"rwnd-limited {avg('rwnd_limited'):.0f} % of {avg('busy') / 1000:.1f} s busy; "
                f"receiver unread {self._unread()}")  # fmt: skip

    def _unread(self) -> str:
        if not self.unread:
            return "0"
        mean = sum(self.unread) / len(self.unread)
        return f"mean {mean / 1e6:.1f} MB, peak {max(self.unread) / 1e6:.1f} MB"


# ------------------------------------------------------------------------ driver


def measure_rtt_ms(lab: Lab) -> float:
    lab.check_output(SENDER, ["ping", "-c1", "-W3", lab.ip(RECEIVER)])  # warm-up
    out = lab.check_output(SENDER, ["ping", "-c5", "-i0.2", "-W3", lab.ip(RECEIVER)])
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


def udp_drops(lab: Lab, host: str) -> int:
    """Udp RcvbufErrors of `host`'s namespace (/proc/net/snmp is per namespace)."""
    rows = [ln.split() for ln in lab.check_output(host, ["cat", "/proc/net/snmp"]).splitlines()]
    head, values = [r for r in rows if r and r[0] == "Udp:"][:2]
    return int(dict(zip(head, values, strict=True)).get("RcvbufErrors", 0))


def tcp_sysctls(lab: Lab, host: str) -> dict[str, str]:
    out = lab.check_output(host, ["sysctl", "-n", *TCP_KEYS])
    return dict(zip(TCP_KEYS, (" ".join(v.split()) for v in out.splitlines()), strict=True))


def describe(settings: dict[str, str]) -> str:
    maxima = {k.rsplit("_", 1)[1]: int(v.split()[2]) // MiB for k, v in settings.items()}
    return ", ".join(f"tcp_{k} max {v} MiB" for k, v in maxima.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256, help="MiB per TCP transfer")
    ap.add_argument("--webrtc-size-mib", type=int, default=48, help="MiB per WebRTC transfer")
    ap.add_argument("--delay-ms", type=float, default=35.0, help="one-way delay (RTT = 2x)")
    ap.add_argument("--parallel", type=int, default=4, help="N of the sp2p -parallel N row")
    ap.add_argument("--only", default=",".join(DEFAULT_KINDS),
                    help=f"comma-separated row kinds of {', '.join(ROW_KINDS)}")  # fmt: skip
    ap.add_argument("--profiles", default="default,raised", help="TCP sysctl profiles to run")
    ap.add_argument(
        "--no-offload",
        action="store_true",
        help="delay line without TSO: per-1500-byte packets (~100 MB/s ceiling)",
    )
    ap.add_argument("--runs", type=int, default=1,
                    help="rounds of every row (interleaved); each row shows its best")  # fmt: skip
    ap.add_argument("--no-ss", action="store_true", help="no `ss -tin` line under TCP rows")
    ap.add_argument("-v", "--verbose", action="store_true", help="print process logs at exit")
    ap.add_argument("--aiortc-peer", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    ap.add_argument("--size-bytes", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="stock", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.aiortc_peer:
        return stdio_peer(args.aiortc_peer, args.size_bytes, args.mode)
    if os.geteuid() != 0:
        print("bench_link: needs root (network namespaces)", file=sys.stderr)
        return 2
    kinds = set(args.only.split(","))
    if unknown := kinds - set(ROW_KINDS):
        ap.error(f"--only: unknown row kind(s) {', '.join(sorted(unknown))}")
    size, wsize = args.size_mib * MiB, args.webrtc_size_mib * MiB
    with link_lab(args.delay_ms, offload=not args.no_offload, verbose=args.verbose) as lab:
        print(f"link: {SENDER} -> {RECEIVER} over the TUN delay line, ping RTT "
              f"{measure_rtt_ms(lab):.1f} ms, TSO {'off' if args.no_offload else 'on'}; "
              f"TCP {args.size_mib} MiB, WebRTC {args.webrtc_size_mib} MiB per transfer, "
              f"random data; {load_average()}",
              flush=True)  # fmt: skip
        server_url, why = None, ""
        if kinds & {"tcp", "parallel", "webrtc"}:
            try:
                server_url = start_server(lab)
            except Exception as exc:  # noqa: BLE001
                why = f"sp2p-server did not start: {str(exc).splitlines()[0][:100]}"
        parallel_ok = sp2p_has_parallel()

        def sampled(name: str, fn: Callable[[], float | tuple[float, float]]) -> Row:
            """A TCP row, with what `ss` saw on the sender's data connections."""
            with SsSampler(lab) as ss:
                row = try_row(name, fn)
            if row.bytes_per_s is not None and not args.no_ss:
                row.detail = ss.summary()
            return row

        def sp2p_row(name: str, kind: str, src: Path, transport: str, par: int | None) -> Row:
            if server_url is None:
                return Row(name, None, f"n/a ({why})")
            if kind == "parallel" and not parallel_ok:
                return Row(name, None, "not available (`sp2p send -help` has no -parallel)")
            run = lambda: sp2p_transfer(lab, server_url, src, transport=transport, parallel=par)  # noqa: E731
            return sampled(name, run) if transport == "tcp" else udp_row(name, run)

        def udp_row(name: str, fn: Callable[[], float | tuple[float, float]]) -> Row:
            """A WebRTC row, with the datagrams the receiver's kernel dropped (full socket)."""
            before = udp_drops(lab, RECEIVER)
            row = try_row(name, fn)
            if row.bytes_per_s is not None:
                drops = udp_drops(lab, RECEIVER) - before
                row.detail = f"UDP datagrams dropped at the receiver for a full socket buffer: {drops}"
            return row

        defaults = {h: tcp_sysctls(lab, h) for h in (SENDER, RECEIVER)}
        profiles = [
            (f"{title}: {describe(per_host[SENDER])}", per_host)
            for key, title, per_host in (("default", "namespace defaults", defaults),
                                         ("raised", "raised", {h: RAISED for h in defaults}))
            if key in args.profiles.split(",")
        ]  # fmt: skip
        tcp_src = lab.workdir / "payload-tcp.bin"
        if kinds & {"tcp", "parallel"}:
            write_random(tcp_src, args.size_mib * MiB)
        for title, per_host in profiles:
            for host, settings in per_host.items():
                lab.sysctl(host, settings)
            specs: list[tuple[str, Callable[[], Row]]] = []
            if "raw" in kinds:
                specs.append(("raw", lambda: sampled("raw TCP autotuned", lambda: raw_tcp(lab, size))))
                # the same socket options as sp2p's TCP channel, decided in the sender's netns
                sp2p_sndbuf = lab.call(SENDER, fixed_send_buffer)
                if sp2p_sndbuf:
                    specs.append(("raw sndbuf", functools.partial(
                        sampled, f"raw TCP sp2p sndbuf {2 * sp2p_sndbuf // MiB}M",
                        functools.partial(raw_tcp, lab, size, sp2p_sndbuf))))  # fmt: skip
            if "pinned" in kinds:
                specs.append(("pinned", lambda: sampled("raw TCP pinned 8M",
                                                        lambda: raw_tcp(lab, size, *PINNED))))  # fmt: skip
            if "tcp" in kinds:
                # -parallel 1: one stream even where the CLI would pick several
                specs.append(("x1", lambda: sp2p_row("sp2p TCP x1", "tcp", tcp_src, "tcp",
                                                     1 if parallel_ok else None)))  # fmt: skip
            if "parallel" in kinds:
                specs.append(("par", lambda: sp2p_row(f"sp2p TCP -parallel {args.parallel}", "parallel",
                                                      tcp_src, "tcp", args.parallel)))  # fmt: skip
            print_section(f"TCP, {title}", best_rows(specs, args.runs), "best raw")
        for host, settings in defaults.items():
            lab.sysctl(host, settings)
        tcp_src.unlink(missing_ok=True)
        specs = []
        if "aiortc" in kinds:
            specs.append(("aiortc", lambda: udp_row("bare aiortc", lambda: data_channel(lab, wsize))))
        if "channel" in kinds:
            specs.append(("channel", lambda: udp_row("sp2p channel only",
                                                     lambda: data_channel(lab, wsize, "tuned"))))  # fmt: skip
        if "webrtc" in kinds:
            rtc_src = write_random(lab.workdir / "payload-webrtc.bin", args.webrtc_size_mib * MiB)
            specs.append(("webrtc", lambda: sp2p_row("sp2p WebRTC", "webrtc", rtc_src, "webrtc", None)))
        if specs:
            print_section("WebRTC data channel (UDP; TCP buffer sysctls do not apply)",
                          best_rows(specs, args.runs), "bare aiortc")  # fmt: skip
    print(
        f"\n{load_average()} at the end (other work on the machine skews "
        "CPU-bound rows: sp2p and aiortc)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The delay line: compiles `delaylink.c` once (cached by source hash) and starts it.

A `DelayLink` is a point-to-point IPv4 link between two namespaces made of two TUN devices
and one `delaylink` process that holds every packet `delay_ms` before passing it on (each
way, so RTT = 2 x delay_ms). It carries anything IP: TCP, UDP, ICMP.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.netlab.netns import NetnsError, ns_sh, sh

SOURCE = Path(__file__).with_name("delaylink.c")
#: TUN queue length; the default 500 overflows when a fast sender meets a 35 ms pause
TXQUEUELEN = 10000


def cache_dir() -> Path:
    base = os.environ.get("SP2P_NETLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sp2p-netlab"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_delaylink() -> Path:
    """Return the path of the compiled forwarder, compiling it with gcc if needed."""
    source = SOURCE.read_bytes()
    binary = cache_dir() / f"delaylink-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.exists():
        return binary
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise NetnsError("gcc is needed to build the delay link (apt-get install gcc)")
    # compile to a temp name and rename: concurrent runs never see a half-written binary
    fd, tmp = tempfile.mkstemp(dir=binary.parent, prefix=".delaylink-")
    os.close(fd)
    try:
        sh([cc, "-O2", "-Wall", "-Wextra", "-o", tmp, str(SOURCE)], timeout=120)
        os.replace(tmp, binary)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return binary


@dataclass
class DelayLink:
    """A running delay line; `close()` stops the process, which removes both devices."""

    proc: subprocess.Popen[bytes]
    ns_a: str
    ns_b: str
    dev_a: str
    dev_b: str
    delay_ms: float

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_delay_link(
    ns_a: str,
    dev_a: str,
    addr_a: str,
    ns_b: str,
    dev_b: str,
    addr_b: str,
    *,
    delay_ms: float,
    loss_pct: float = 0.0,
    offload: bool = True,
    stderr_path: Path | None = None,
) -> DelayLink:
    """Create TUN `dev_a` in `ns_a` (address `addr_a`, peer `addr_b`) and its mirror in `ns_b`.

    Addresses are plain IPv4 literals; each end gets a /32 with the other as its peer, so the
    kernel needs no ARP and installs the host route to the peer itself. `offload` (ignored
    with loss) lets TCP cross as GSO super-packets: far cheaper, like a NIC with TSO; without
    it every MTU-sized packet costs the forwarder two syscalls (it tops out near 100 MB/s).
    """
    binary = build_delaylink()
    argv = [
        str(binary),
        ns_a,
        dev_a,
        ns_b,
        dev_b,
        str(int(delay_ms * 1000)),
        str(int(loss_pct * 10000)),
        "1" if offload else "0",
    ]
    err = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
    finally:
        if stderr_path:
            err.close()  # type: ignore[union-attr]
    link = DelayLink(proc, ns_a, ns_b, dev_a, dev_b, delay_ms)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            raise NetnsError(f"delaylink did not start (rc {proc.wait(timeout=5)})")
        for ns, dev, mine, peer in ((ns_a, dev_a, addr_a, addr_b), (ns_b, dev_b, addr_b, addr_a)):
            # IPv6 off: no router solicitations wandering through the line
            ns_sh(ns, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"])
            sh(["ip", "-n", ns, "link", "set", "dev", dev, "txqueuelen", str(TXQUEUELEN), "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{mine}/32", "peer", f"{peer}/32", "dev", dev])
    except BaseException:
        link.close()
        raise
    return link

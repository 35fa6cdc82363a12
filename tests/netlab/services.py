"""Launchers for real daemons inside a `Lab`: coturn, a STUN reflector, miniupnpd, tcpdump.

Each launcher starts its process with `lab.start` (so `lab.close()` stops it) and waits until
it answers before returning.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.netlab.lab import IPT, PUB_IP, PUB_IP2, Lab
from tests.netlab.netns import NetnsError, ns_sh, sh
from tests.support.coturn import rest_credentials

STUN_MAGIC = 0x2112A442
#: ports of the harness's own STUN reflector (coturn keeps 3478)
REFLECTOR_PORTS = (13478, 13479)
DEFAULT_TURN_SECRET = "sp2p-netlab-turn-secret"
#: pub's stand-in for an Internet uplink: a next hop nobody owns (see `give_pub_an_uplink`)
UPLINK_GW = "10.201.0.254"
UPLINK_MAC = "02:00:00:00:00:fe"


# ---------------------------------------------------------------------- STUN helpers


def stun_request(sock: socket.socket, server: tuple[str, int], timeout: float = 3.0) -> bytes:
    """Send a Binding request from `sock` until a response with our transaction id arrives."""
    tid = os.urandom(12)
    req = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + tid
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        sock.sendto(req, server)
        try:
            data, _ = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if data[8:20] == tid:
            return data
    raise TimeoutError(f"no STUN answer from {server[0]}:{server[1]}")


def stun_mapped_address(
    sock: socket.socket, server: tuple[str, int], timeout: float = 3.0
) -> tuple[str, int]:
    """The public `ip:port` the STUN `server` sees for `sock` (XOR-MAPPED-ADDRESS)."""
    data = stun_request(sock, server, timeout)
    off = 20
    while off + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, off)
        if kind == 0x0020 and length >= 8:
            _, family, xport, xaddr = struct.unpack_from("!BBHI", data, off + 4)
            if family == 1:
                ip = socket.inet_ntoa(struct.pack("!I", xaddr ^ STUN_MAGIC))
                return ip, xport ^ (STUN_MAGIC >> 16)
        off += 4 + length + (-length % 4)
    raise ValueError("STUN response without an IPv4 XOR-MAPPED-ADDRESS")


# ---------------------------------------------------------------------- coturn


@dataclass
class Coturn:
    proc: subprocess.Popen[bytes]
    ip: str
    port: int
    secret: str
    realm: str

    @property
    def stun_url(self) -> str:
        return f"stun:{self.ip}:{self.port}"

    @property
    def turn_url(self) -> str:
        return f"turn:{self.ip}:{self.port}?transport=udp"

    def credentials(self, ttl: int = 3600) -> tuple[str, str]:
        return rest_credentials(self.secret, ttl)


def start_coturn(
    lab: Lab,
    *,
    secret: str = DEFAULT_TURN_SECRET,
    port: int = 3478,
    realm: str = "sp2p",
    min_port: int = 49160,
    max_port: int = 49400,
    extra_args: Sequence[str] = (),
) -> Coturn:
    """coturn in pub as STUN + TURN server with REST-API auth (`use-auth-secret`).

    `extra_args`: more turnserver options, e.g. `--denied-peer-ip=...` as production has.
    """
    d = lab.workdir
    give_pub_an_uplink(lab)
    argv = [
        "stdbuf", "-oL", "turnserver", "-n", f"--listening-ip={PUB_IP}", f"--relay-ip={PUB_IP}",
        f"--listening-port={port}", f"--min-port={min_port}", f"--max-port={max_port}",
        f"--realm={realm}", "--use-auth-secret", f"--static-auth-secret={secret}",
        "--fingerprint", "--no-tls", "--no-dtls", "--no-cli", "--no-multicast-peers",
        f"--userdb={d / 'turndb'}", f"--pidfile={d / 'turnserver.pid'}",
        "--log-file=stdout", "--simple-log", "--verbose", *extra_args,
    ]  # fmt: skip
    proc = lab.run("pub", argv, name="turnserver")

    def ready() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            stun_request(s, (PUB_IP, port), timeout=15)

    try:
        lab.call("pub", ready, call_timeout=20)
    except (TimeoutError, OSError) as exc:
        raise NetnsError(f"coturn not answering STUN: {exc}\n{lab.output_of(proc)[-3000:]}") from exc
    coturn = Coturn(proc, PUB_IP, port, secret, realm)
    lab.services["coturn"] = coturn
    return coturn


def give_pub_an_uplink(lab: Lab) -> None:
    """A default route in pub whose packets vanish silently, like a real server's uplink.

    Without it pub has no route to the NATed LANs, so coturn relaying a peer's ICE check
    to the other peer's host candidate (10.201.2.10) gets ENETUNREACH from sendto, and
    coturn closes the whole allocation on any relay send error ("udp send: Network is
    unreachable", session "closed ... reason: general"); every later request of that
    client then lands in a new, allocation-less session (438, then 400). A real TURN
    server has a default route: such packets leave and die upstream without an error.
    The next hop has a permanent neighbour entry with a MAC nobody owns: no ARP, and
    the frames are dropped by the bridge's other ports.
    """
    ns = lab.ns("pub")
    sh(["ip", "-n", ns, "neigh", "replace", UPLINK_GW, "lladdr", UPLINK_MAC, "dev", "br0",
        "nud", "permanent"])  # fmt: skip
    sh(["ip", "-n", ns, "route", "replace", "default", "via", UPLINK_GW, "dev", "br0"])


# ---------------------------------------------------------------------- STUN reflector


def start_stun_reflector(lab: Lab) -> subprocess.Popen[bytes]:
    """The harness's RFC 5780 STUN server on pub's two addresses x REFLECTOR_PORTS (once)."""
    if "reflector" in lab.services:
        proc: subprocess.Popen[bytes] = lab.services["reflector"]
        return proc
    script = Path(__file__).with_name("stunsrv.py")
    argv = [sys.executable, str(script), PUB_IP, PUB_IP2, *map(str, REFLECTOR_PORTS)]
    proc = lab.start("pub", argv, ready_text="ready", name="stunsrv")
    lab.services["reflector"] = proc
    return proc


# ---------------------------------------------------------------------- miniupnpd


def _miniupnpd_conf(router_lan_ip: str, http_port: int) -> str:
    net = router_lan_ip.rsplit(".", 1)[0] + ".0/24"
    return "\n".join([
        "ext_ifname=wan0",
        "listening_ip=br-lan",
        f"http_port={http_port}",
        "enable_upnp=yes",
        "enable_natpmp=no",
        "secure_mode=yes",
        "system_uptime=yes",
        "uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b",
        # a private WAN address disables forwarding in 2.3.1 unless STUN says "full cone"
        "ext_perform_stun=yes",
        f"ext_stun_host={PUB_IP}",
        f"ext_stun_port={REFLECTOR_PORTS[0]}",
        f"allow 1024-65535 {net} 1024-65535",
        "deny 0-65535 0.0.0.0/0 0-65535",
        "",
    ])  # fmt: skip


def start_miniupnpd(lab: Lab, router: str = "r1", *, http_port: int = 5000) -> subprocess.Popen[bytes]:
    """miniupnpd (IGD on `router`'s br-lan) with the iptables chains it expects."""
    r = lab.hosts[router]
    if r.lan_ip is None:
        raise ValueError(f"{router} is not a router")
    start_stun_reflector(lab)
    lo, hi = REFLECTOR_PORTS
    rules = [
        # = /etc/miniupnpd/iptables_init.sh -i wan0, but with the legacy backend explicitly
        ["-t", "nat", "-N", "MINIUPNPD"],
        ["-t", "nat", "-I", "PREROUTING", "-i", "wan0", "-j", "MINIUPNPD"],
        ["-t", "nat", "-N", "MINIUPNPD-POSTROUTING"],
        ["-t", "nat", "-I", "POSTROUTING", "-o", "wan0", "-j", "MINIUPNPD-POSTROUTING"],
        ["-t", "mangle", "-N", "MINIUPNPD"],
        ["-t", "mangle", "-I", "PREROUTING", "-i", "wan0", "-j", "MINIUPNPD"],
        ["-N", "MINIUPNPD"],
        ["-I", "FORWARD", "-i", "wan0", "!", "-o", "wan0", "-j", "MINIUPNPD"],
        # its STUN self-test is answered from changed ip/port: let that past the WAN DROP
        ["-I", "INPUT", "-i", "wan0", "-p", "udp", "-s", f"{PUB_IP}/31",
         "--sport", f"{lo}:{hi}", "-j", "ACCEPT"],
    ]  # fmt: skip
    for rule in rules:
        ns_sh(r.ns, [IPT, *rule])
    conf = lab.workdir / f"miniupnpd-{router}.conf"
    conf.write_text(_miniupnpd_conf(r.lan_ip, http_port))
    pidfile = lab.workdir / f"miniupnpd-{router}.pid"
    argv = ["/usr/sbin/miniupnpd", "-d", "-f", str(conf), "-P", str(pidfile)]
    proc = lab.start(router, argv, ready_text="HTTP listening", name="miniupnpd", timeout=20)
    # forwarding is enabled only after the STUN probes; wait for the verdict
    deadline = time.monotonic() + 20
    while "Port forwarding is now enabled" not in lab.output_of(proc):
        if "is now disabled" in lab.output_of(proc) or time.monotonic() > deadline:
            raise NetnsError(f"miniupnpd did not enable forwarding:\n{lab.output_of(proc)}")
        time.sleep(0.05)
    lab.services[f"miniupnpd-{router}"] = proc
    return proc


# ---------------------------------------------------------------------- capture

#: the longest packet a capture meets: a UDP GSO batch is one IP packet of up to 64 KiB until
#: it is delivered (tcpdump's default, 256 KiB, would size every slot of the ring for it)
_SNAPLEN = 65535 + 64
#: tcpdump's kernel ring, KiB: in immediate mode each packet takes a whole _SNAPLEN slot, so
#: this holds ~2,000 packets a CPU-starved tcpdump has not read yet (the default, 2 MiB of
#: 256 KiB slots, held 8: a 2 MiB relay at load 8-13 lost 278-396 of its ~7,000 packets)
_BUFFER_KIB = 128 * 1024
#: the last of the statistics tcpdump prints when it stops
_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel$", re.MULTILINE)


@dataclass
class Capture:
    """A tcpdump writing a pcap file in the lab's workdir; `stop()` returns its bytes."""

    lab: Lab
    proc: subprocess.Popen[bytes]
    path: Path

    def stop(self) -> bytes:
        """The pcap, complete: a packet the kernel dropped (tcpdump starved under load) fails
        here, by name, instead of as a short capture in the test's own assertions."""
        self.lab.stop(self.proc)
        log = self.lab.output_of(self.proc)
        dropped = _DROPPED.search(log)
        assert dropped is not None, f"tcpdump printed no statistics:\n{log[-2000:]}"
        assert dropped.group(1) == "0", f"the capture is incomplete:\n{log[-2000:]}"
        return self.path.read_bytes() if self.path.exists() else b""


def start_capture(lab: Lab, host: str, iface: str = "any", bpf: str = "") -> Capture:
    """Capture whole packets on `iface` in `host` (e.g. pub/br0 sees all relay traffic)."""
    path = lab.workdir / f"capture-{host}-{iface}-{time.monotonic_ns()}.pcap"
    # immediate mode: packets are written as they come, not in 1 s blocks lost on SIGTERM.
    # nice -10: beside other tests (pytest-xdist) and benches a tcpdump at the default
    # priority fell behind its ring (568 of 6,915 packets dropped at load ~20); this one
    # wakes for each packet and needs little CPU, so a higher priority costs the others nothing
    argv = ["nice", "-n", "-10", "tcpdump", "-i", iface, "-s", str(_SNAPLEN), "-B", str(_BUFFER_KIB), "-U", "--immediate-mode",
            "-n", "-Z", "root", "-w", str(path)]  # fmt: skip
    if bpf:
        argv.append(bpf)
    proc = lab.start(host, argv, ready_text="listening on", name="tcpdump")
    return Capture(lab, proc, path)

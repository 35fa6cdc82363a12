"""`Lab`: one isolated topology of namespaces plus the processes started in it.

See the package docstring (`tests/netlab/__init__.py`) for the address plan and the API.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tests.netlab.delay import DelayLink, start_delay_link
from tests.netlab.netns import (
    BASE_PREFIX,
    NetnsError,
    NsWorker,
    cleanup_stale,
    delete_netns,
    kill_netns_processes,
    ns_sh,
    sh,
)
from tests.netlab.procs import LabProcesses
from tests.support.server_proc import clean_env, server_command

if TYPE_CHECKING:
    from tests.netlab.services import Capture, Coturn

T = TypeVar("T")

PUB_IP = "10.201.0.100"
PUB_IP2 = "10.201.0.101"  # second address: STUN CHANGE-REQUEST (miniupnpd's self-test)
WAN_NET = "10.201.0.0/24"
IPT = "iptables-legacy"  # miniupnpd-iptables only sees legacy tables; never mix backends


class Nat(enum.Enum):
    """What a router does to its LAN's traffic towards the public segment."""

    #: plain MASQUERADE + conntrack: endpoint-independent mapping, port-restricted filtering
    PORT_RESTRICTED = "port-restricted"
    #: MASQUERADE --random-fully: a new external port per destination
    SYMMETRIC = "symmetric"
    #: plain routing, LAN addresses reachable from pub and from other NONE routers
    NONE = "none"


@dataclass
class Host:
    name: str
    ns: str
    ip: str  # pub: 10.201.0.100; router: its WAN address; LAN host: its LAN address
    router: str | None = None  # LAN hosts: their router's name
    lan_ip: str | None = None  # routers: their LAN address (10.201.N.1)
    nat: Nat | None = None  # routers only


@dataclass
class Service:
    """A server process started in the lab and accepting on `ip:port`."""

    proc: subprocess.Popen[bytes]
    host: str
    ip: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


_counter = itertools.count(1)
_stale_cleaned = threading.Lock()
_stale_done = False


def _cleanup_stale_once() -> None:
    global _stale_done
    with _stale_cleaned:
        if not _stale_done:
            cleanup_stale()
            _stale_done = True


def _router_rules(nat: Nat) -> str:
    masq = {
        Nat.PORT_RESTRICTED: "-A POSTROUTING -o wan0 -j MASQUERADE\n",
        Nat.SYMMETRIC: "-A POSTROUTING -o wan0 -j MASQUERADE --random-fully\n",
        Nat.NONE: "",
    }[nat]
    # The WAN INPUT DROP is what keeps a punched port: without it the peer's first packet
    # creates a conntrack entry to the router itself and MASQUERADE then picks another port.
    return (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f":POSTROUTING ACCEPT [0:0]\n{masq}COMMIT\n"
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
        "-A INPUT -i wan0 -p icmp -j ACCEPT\n"
        "-A INPUT -i wan0 -j DROP\n"
        "COMMIT\n"
    )


class Lab(LabProcesses):
    """A topology of namespaces; everything it starts dies with `close()`."""

    def __init__(self, *, prefix: str | None = None) -> None:
        _cleanup_stale_once()
        self.prefix = prefix or f"{BASE_PREFIX}{os.getpid()}x{next(_counter)}-"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"netlab-{self.prefix}"))
        self.hosts: dict[str, Host] = {}
        self._procs: list[tuple[subprocess.Popen[bytes], Path | None, str]] = []
        self._links: list[DelayLink] = []
        self._workers: dict[str, NsWorker] = {}
        self._closed = False
        self._lan_next: dict[str, int] = {}
        self.services: dict[str, Any] = {}  # launchers remember what they started (stun, ...)
        #: print each process's log tail on close (pytest shows it for failing tests only)
        self.print_logs = True

    # ----------------------------------------------------------------- building

    @classmethod
    def create(
        cls,
        nat1: Nat = Nat.PORT_RESTRICTED,
        nat2: Nat = Nat.PORT_RESTRICTED,
        *,
        same_lan: bool = False,
        delay_ms: float = 0.0,
        delay_host: str = "h1",
        loss_pct: float = 0.0,
        delay_offload: bool = True,
        prefix: str | None = None,
    ) -> Lab:
        """pub + r1/h1 (+ r2/h2, or h2 on r1's LAN with `same_lan`); optional delay on one host."""
        lab = cls(prefix=prefix)
        try:
            lab._add_pub()
            lab.add_router("r1", nat1)
            if not same_lan:
                lab.add_router("r2", nat2)
            for name, router in (("h1", "r1"), ("h2", "r1" if same_lan else "r2")):
                delay = delay_ms if name == delay_host else 0.0
                lab.add_host(name, router, delay_ms=delay, loss_pct=loss_pct if delay else 0.0,
                             delay_offload=delay_offload)  # fmt: skip
        except BaseException:
            lab.close()
            raise
        return lab

    def _new_ns(self, name: str) -> str:
        ns = self.prefix + name
        sh(["ip", "netns", "add", ns])
        sh(["ip", "-n", ns, "link", "set", "dev", "lo", "up"])
        return ns

    def _add_pub(self) -> None:
        ns = self._new_ns("pub")
        self.hosts["pub"] = Host("pub", ns, PUB_IP)
        sh(["ip", "-n", ns, "link", "add", "name", "br0", "type", "bridge"])
        sh(["ip", "-n", ns, "link", "set", "dev", "br0", "up"])
        for ip in (PUB_IP, PUB_IP2):
            sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "br0"])
        # bridged frames would otherwise run through this namespace's netfilter hooks
        ns_sh(ns, ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"])

    def add_router(self, name: str, nat: Nat) -> Host:
        """Router `name` = rN: WAN 10.201.0.N on pub's bridge, LAN bridge br-lan 10.201.N.1/24."""
        n = int(name.lstrip("r"))
        pub = self.hosts["pub"].ns
        ns = self._new_ns(name)
        wan_ip, lan_ip = f"10.201.0.{n}", f"10.201.{n}.1"
        host = Host(name, ns, wan_ip, lan_ip=lan_ip, nat=nat)
        self.hosts[name] = host
        # created inside the router, peer moved straight into pub: no name ever exists on the host
        sh(["ip", "-n", ns, "link", "add", "name", "wan0", "type", "veth", "peer", "name", name,
            "netns", pub])  # fmt: skip
        sh(["ip", "-n", pub, "link", "set", "dev", name, "master", "br0", "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{wan_ip}/24", "dev", "wan0"])
        sh(["ip", "-n", ns, "link", "set", "dev", "wan0", "up"])
        sh(["ip", "-n", ns, "link", "add", "name", "br-lan", "type", "bridge"])
        sh(["ip", "-n", ns, "link", "set", "dev", "br-lan", "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{lan_ip}/24", "dev", "br-lan"])
        ns_sh(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1",
                   "net.bridge.bridge-nf-call-iptables=0",
                   # answer ARP for delay-line hosts at once (default waits up to 0.8 s)
                   "net.ipv4.conf.br-lan.proxy_arp=1", "net.ipv4.neigh.br-lan.proxy_delay=0"])  # fmt: skip
        ns_sh(ns, [f"{IPT}-restore"], input=_router_rules(nat))
        if nat is Nat.NONE:
            self._route_public_lans()
        return host

    def _route_public_lans(self) -> None:
        """Make every NONE router's LAN reachable from pub and from the other NONE routers."""
        routers = [h for h in self.hosts.values() if h.nat is Nat.NONE]
        for r in routers:
            net = f"{r.lan_ip.rsplit('.', 1)[0]}.0/24"  # type: ignore[union-attr]
            for other in [self.hosts["pub"], *routers]:
                if other is not r:
                    sh(["ip", "-n", other.ns, "route", "replace", net, "via", r.ip])

    def add_host(
        self,
        name: str,
        router: str,
        *,
        delay_ms: float = 0.0,
        loss_pct: float = 0.0,
        delay_offload: bool = True,
    ) -> Host:
        """A LAN host behind `router` (10.201.N.10, .11, ...), default route via the router.

        With `delay_ms`, the host hangs off its router by a TUN delay line instead of the
        LAN bridge, so everything it sends or receives takes `delay_ms` more each way
        (`loss_pct` drops that share of packets each way; `delay_offload`: see delay.py).
        """
        r = self.hosts[router]
        assert r.lan_ip is not None, f"{router} is not a router"
        k = self._lan_next.get(router, 10)
        self._lan_next[router] = k + 1
        ip = f"{r.lan_ip.rsplit('.', 1)[0]}.{k}"
        ns = self._new_ns(name)
        self.hosts[name] = Host(name, ns, ip, router=router)
        if delay_ms > 0:
            log = self.workdir / f"delaylink-{name}.log"
            self._links.append(
                start_delay_link(ns, "eth0", ip, r.ns, name, r.lan_ip,
                                 delay_ms=delay_ms, loss_pct=loss_pct, offload=delay_offload,
                                 stderr_path=log)
            )  # fmt: skip
        else:
            sh(["ip", "-n", ns, "link", "add", "name", "eth0", "type", "veth", "peer", "name",
                name, "netns", r.ns])  # fmt: skip
            sh(["ip", "-n", r.ns, "link", "set", "dev", name, "master", "br-lan", "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "dev", "eth0", "up"])
        # the default route also carries SSDP multicast to the router (UPnP discovery)
        sh(["ip", "-n", ns, "route", "add", "default", "via", r.lan_ip, "dev", "eth0",
            "onlink"])  # fmt: skip
        return self.hosts[name]

    def set_nat(self, router: str, nat: Nat) -> None:
        """Switch a NAT router between PORT_RESTRICTED and SYMMETRIC; flushes its conntrack."""
        r = self.hosts[router]
        if Nat.NONE in (nat, r.nat):
            raise ValueError("Nat.NONE can only be chosen when the router is built")
        for opt in ([], ["--random-fully"]):
            with contextlib.suppress(NetnsError):
                ns_sh(r.ns, [IPT, "-t", "nat", "-D", "POSTROUTING", "-o", "wan0", "-j",
                             "MASQUERADE", *opt])  # fmt: skip
        opt = ["--random-fully"] if nat is Nat.SYMMETRIC else []
        ns_sh(r.ns, [IPT, "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE",
                     *opt])  # fmt: skip
        # existing mappings survive a rule change
        with contextlib.suppress(NetnsError):
            ns_sh(r.ns, ["conntrack", "-F"])
        r.nat = nat

    # ----------------------------------------------------------------- lookups

    def ns(self, host: str) -> str:
        return self.hosts[host].ns

    def ip(self, host: str) -> str:
        return self.hosts[host].ip

    def sysctl(self, host: str, settings: Mapping[str, str | int]) -> None:
        ns_sh(self.ns(host), ["sysctl", "-qw", *(f"{k}={v}" for k, v in settings.items())])

    def start_server(
        self,
        argv: Sequence[str] | None = None,
        *,
        port: int = 8080,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Service:
        """Start sp2p-server (or `argv`, which must listen on pub:`port`) in pub: this
        checkout's, like tests/support/server_proc (the `sp2p-server` script of an editable
        install runs whichever checkout last ran `pip install -e`)."""
        ip = self.ip("pub")
        cmd = list(argv) if argv is not None else [*server_command(), "-addr", f"{ip}:{port}"]
        this_checkout = {k: v for k, v in clean_env().items() if k in ("PYTHONPATH", "SP2P_STATIC_DIR")}
        proc = self.start(
            "pub", [*cmd, *extra_args], ready_tcp=(ip, port), timeout=timeout,
            env={**this_checkout, **(env or {})},
        )  # fmt: skip
        return Service(proc, "pub", ip, port)

    def start_coturn(self, **kw: Any) -> Coturn:
        """coturn (STUN + TURN, REST secret) in pub; see `services.start_coturn`."""
        from tests.netlab.services import start_coturn

        return start_coturn(self, **kw)

    def start_miniupnpd(self, router: str = "r1", **kw: Any) -> subprocess.Popen[bytes]:
        """miniupnpd on `router` (+ the STUN reflector it needs in pub)."""
        from tests.netlab.services import start_miniupnpd

        return start_miniupnpd(self, router, **kw)

    def start_stun_reflector(self) -> subprocess.Popen[bytes]:
        from tests.netlab.services import start_stun_reflector

        return start_stun_reflector(self)

    def capture(self, host: str, iface: str = "any", bpf: str = "") -> Capture:
        """tcpdump in `host`; `.stop()` returns the pcap bytes."""
        from tests.netlab.services import start_capture

        return start_capture(self, host, iface, bpf)

    # ----------------------------------------------------------------- teardown

    def close(self) -> None:
        """Kill every process in the lab's namespaces, then delete them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        procs = [p for p, _, _ in self._procs]
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for p in procs:
            try:
                p.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for link in self._links:
            link.close()
        for w in self._workers.values():
            w.stop()
        namespaces = [h.ns for h in self.hosts.values()]
        kill_netns_processes(namespaces, grace=1.0)
        delete_netns(namespaces)
        if self.print_logs:
            self._print_logs()
        if not os.environ.get("SP2P_NETLAB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _print_logs(self) -> None:
        """Log tails go to stdout: pytest shows them only for failing tests."""
        for _, log, label in self._procs:
            if log is not None and log.exists():
                text = log.read_text(errors="replace")[-2000:]
                print(f"----- netlab {self.prefix}{label} -----\n{text}")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

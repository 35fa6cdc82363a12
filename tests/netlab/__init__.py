"""netlab: real network topologies in Linux network namespaces for sp2p tests (root only).

Address plan (private, exists only inside the lab's namespaces; labs never route to each
other or to the host, so several labs can use the same addresses at once):

    h1 10.201.1.10 ─ br-lan ─ r1 10.201.1.1 | wan0 10.201.0.1 ─┐
                                                              pub br0 10.201.0.100 (+ .101)
    h2 10.201.2.10 ─ br-lan ─ r2 10.201.2.1 | wan0 10.201.0.2 ─┘   sp2p-server, coturn, STUN

    same_lan=True: no r2; h2 = 10.201.1.11 on r1's br-lan.
    delay_ms=D:    `delay_host` (h1) hangs off its router by a TUN delay line (C helper,
                   D ms each way => RTT 2D) instead of the bridge; everything it talks to
                   (peer, server, coturn) sees the delay. loss_pct=P drops P % each way;
                   delay_offload=False turns TSO off (per-1500-byte packets, ~100 MB/s max).

Routers: `Nat.PORT_RESTRICTED` (MASQUERADE), `Nat.SYMMETRIC` (MASQUERADE --random-fully) or
`Nat.NONE` (routed); all drop unsolicited WAN input like a home router (iptables-legacy).
Namespaces are named `snl<pid>x<n>-<host>`; a new lab first removes namespaces whose creating
pid is dead (crashed runs).

Building the five topologies of issue 5 (`netlab` is the pytest fixture, a factory):

    lab = netlab(same_lan=True)                                     # 1 same LAN
    lab = netlab(Nat.PORT_RESTRICTED, Nat.PORT_RESTRICTED)          # 2 two cone NATs (+ coturn as STUN)
    lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC); lab.start_coturn()  # 3 symmetric NATs + TURN
    lab = netlab(); lab.start_miniupnpd("r1")                       # 4 sender's router has UPnP
    lab = netlab(same_lan=True, delay_ms=35)                        # 5 70 ms RTT link (h1 delayed)

Outside pytest: `with Lab.create(...) as lab:` (scripts/bench_link.py does this).

API of `Lab` (host names: "pub", "r1", "r2", "h1", "h2", plus any `add_host`):

    lab.ip(host) -> str                 pub 10.201.0.100, rN its WAN address, hN its LAN address
    lab.ns(host) -> str                 namespace name (for `ip netns exec`)
    lab.run(host, argv, env=None, name=None, **popen_kw) -> Popen
                                        started inside host; env is added to os.environ; output
                                        goes to a log file unless popen_kw redirects it
    lab.output_of(proc) -> str          that log so far
    lab.check_output(host, argv, timeout=60, input=None, env=None, check=True) -> str
    lab.start(host, argv, ready_tcp=(ip, port), ready_text="...", timeout=20) -> Popen
                                        generic daemon launcher: waits until it accepts/logs
    lab.start_server(argv=None, port=8080, extra_args=(), env=None) -> Service
                                        `sp2p-server -addr 10.201.0.100:8080` in pub (or any
                                        argv listening there); Service.url/.proc/.ip/.port
    lab.start_coturn(secret=DEFAULT_TURN_SECRET, port=3478) -> Coturn
                                        STUN+TURN on 10.201.0.100:3478, use-auth-secret;
                                        .stun_url, .turn_url, .secret, .credentials(ttl)
    lab.start_miniupnpd(router="r1") -> Popen   IGD on the router's LAN, port forwarding live
    lab.capture(host, iface="any", bpf="") -> Capture; capture.stop() -> pcap bytes
    lab.call(host, fn, *args, call_timeout=60, **kw) -> result
                                        run a Python callable on a thread inside host
                                        (sockets it creates live there; one thread per host)
    lab.submit(host, fn, *args) -> Future  same on a fresh thread, for blocking work
    lab.wait_tcp(host, ip, port, timeout) connect from host until ip:port accepts
    lab.set_nat(router, Nat.X)          switch cone/symmetric at runtime (flushes conntrack)
    lab.sysctl(host, {"net.ipv4.tcp_wmem": "4096 16384 33554432"})
    lab.add_host(name, router, delay_ms=0) -> Host
    lab.stop(proc); lab.close()         close kills every process in the lab's namespaces,
                                        then deletes them (also on failure; idempotent) and
                                        prints process log tails (lab.print_logs = False: not)
    lab.workdir                         per-lab temp dir (logs, pcaps, configs); removed on
                                        close unless SP2P_NETLAB_KEEP=1

Helpers: `tests.netlab.services.stun_mapped_address(sock, (ip, port))`,
`tests.support.coturn.rest_credentials(secret)`. Never send test traffic from the host
namespace: use `lab.call`/`lab.run`.
"""

from __future__ import annotations

from tests.netlab.lab import PUB_IP, PUB_IP2, Host, Lab, Nat, Service
from tests.netlab.netns import NetnsError, cleanup_stale, in_netns

__all__ = [
    "PUB_IP",
    "PUB_IP2",
    "Host",
    "Lab",
    "Nat",
    "NetnsError",
    "Service",
    "cleanup_stale",
    "in_netns",
]

"""Local interface addresses to advertise, and parsing of peer `host:port` strings."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from pathlib import Path

_SIOCGIFADDR = 0x8915


def parse_endpoint(text: str) -> tuple[str, int]:
    """`1.2.3.4:5678` or `[2001:db8::1]:5678` -> (host, port). Raises ValueError."""
    text = text.strip()
    if len(text) > 64:
        raise ValueError("address too long")
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError("malformed IPv6 endpoint")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("expected host:port")
    host = host.split("%", 1)[0]  # zone ids never help a remote peer
    ipaddress.ip_address(host)  # IP literals only: no DNS lookups of peer-supplied names
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("bad port")
    return host, int(port_text)


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _advertisable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if ip.is_loopback:
        return allow_loopback
    return not (ip.is_unspecified or ip.is_link_local or ip.is_multicast)


def _linux_ipv4() -> list[str]:
    import fcntl

    out: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            req = struct.pack("256s", name.encode()[:15])
            with contextlib.suppress(OSError):
                res = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, req)
                out.append(socket.inet_ntoa(res[20:24]))
    return out


def _linux_ipv6() -> list[str]:
    out: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[3] == "00":  # global scope
                raw = bytes.fromhex(fields[0])
                out.append(str(ipaddress.IPv6Address(raw)))
    return out


def _default_route_ipv4() -> list[str]:
    # connect() on UDP sends nothing; it only asks the kernel which source it would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return [s.getsockname()[0]]
        except OSError:
            return []


def local_addresses(*, allow_loopback: bool = False) -> list[str]:
    """Addresses a peer could dial us on, IPv4 first, without duplicates."""
    candidates: list[str] = []
    if sys.platform.startswith("linux"):
        candidates += _linux_ipv4() + _linux_ipv6()
    else:
        candidates += _default_route_ipv4()
        with contextlib.suppress(OSError):
            candidates += [str(ai[4][0]) for ai in socket.getaddrinfo(_ascii(socket.gethostname()), None)]
    if allow_loopback:
        candidates.insert(0, "127.0.0.1")
    seen: list[str] = []
    for c in candidates:
        try:
            ip = ipaddress.ip_address(c.split("%", 1)[0])
        except ValueError:
            continue
        if _advertisable(ip, allow_loopback) and str(ip) not in seen:
            seen.append(str(ip))
    return seen


def _ascii(host: str) -> str | bytes:
    """An ASCII name as bytes: getaddrinfo() loads the idna codec (and stringprep) for a str."""
    return host.encode() if host.isascii() else host

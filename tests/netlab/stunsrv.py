"""Minimal STUN binding server with CHANGE-REQUEST (RFC 5389 + RFC 5780), run in pub.

usage: python3 stunsrv.py IP_A IP_B PORT_A PORT_B

Listens on {IP_A, IP_B} x {PORT_A, PORT_B}. A Binding request gets XOR-MAPPED-ADDRESS, sent
from the address/port CHANGE-REQUEST asks for; miniupnpd's self-test needs that to decide its
WAN is "unrestricted" and enable forwarding on a private WAN address. Any other datagram gets
the plain text "ip:port" it came from (a what-is-my-address reflector for NAT probes).
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys

MAGIC = 0x2112A442
ATTR_CHANGE_REQUEST = 0x0003
ATTR_XOR_MAPPED = 0x0020


def change_flags(msg: bytes) -> int:
    off = 20
    while off + 4 <= len(msg):
        kind, length = struct.unpack_from("!HH", msg, off)
        if kind == ATTR_CHANGE_REQUEST and length == 4 and off + 8 <= len(msg):
            return msg[off + 7]
        off += 4 + length + (-length % 4)
    return 0


def binding_response(msg: bytes, ip: str, port: int) -> bytes:
    xaddr = struct.unpack("!I", socket.inet_aton(ip))[0] ^ MAGIC
    attr = struct.pack("!HHBBHI", ATTR_XOR_MAPPED, 8, 0, 1, port ^ (MAGIC >> 16), xaddr)
    return struct.pack("!HH", 0x0101, len(attr)) + msg[4:20] + attr


def main() -> None:
    ip_a, ip_b, port_a, port_b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    socks: dict[tuple[str, int], socket.socket] = {}
    sel = selectors.DefaultSelector()
    for ip in (ip_a, ip_b):
        for port in (port_a, port_b):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            socks[(ip, port)] = s
            sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            msg, (rip, rport) = s.recvfrom(2048)
            if len(msg) < 20 or msg[:2] != b"\x00\x01":
                s.sendto(f"{rip}:{rport}".encode(), (rip, rport))
                continue
            lip, lport = s.getsockname()
            flags = change_flags(msg)
            if flags & 4:
                lip = ip_b if lip == ip_a else ip_a
            if flags & 2:
                lport = port_b if lport == port_a else port_a
            socks[(lip, lport)].sendto(binding_response(msg, rip, rport), (rip, rport))


if __name__ == "__main__":
    main()

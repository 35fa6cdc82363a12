"""A classic-BPF program that picks which listening socket of a SO_REUSEPORT group takes a
new connection: one of the workers' own sockets, never the arbiter's shared one.

The group's sockets are indexed in the order they started listening: the arbiter's socket
(listening first, for the life of the server) is 0, the workers' own ones 1..N. The program
returns 1 + hash(source address, source port) mod N. While a worker is missing (crashed, not
booted yet) its index is out of range and the kernel falls back to its own hash over every
socket in the group, the shared one included, which all workers also serve: nothing queues
where nobody accepts. (The kernel fills a closed socket's slot with the last one, so the
arbiter's stays 0.)

Reads the IP header through SKF_NET_OFF: the IPv4 header length from its first byte, the
source port right after it; IPv6 without extension headers (TCP's SYN has none in
practice; another layout only makes the spread uneven, never a connection lost). A load the
kernel refuses ends the program with 0: the shared socket, served by every worker.
"""

from __future__ import annotations

import ctypes
import socket
import struct

#: from <asm-generic/socket.h> (Linux >= 4.5)
SO_ATTACH_REUSEPORT_CBPF = 51
_NET = -0x100000 & 0xFFFFFFFF  # SKF_NET_OFF: offsets from the network header

# <linux/filter.h> opcodes
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS, _LD_H_IND = 0x20, 0x28, 0x30, 0x48
_TAX, _RET_A, _JA, _JEQ_K = 0x07, 0x16, 0x05, 0x15
_RSH_K, _AND_K, _LSH_K, _XOR_X, _MUL_K, _MOD_K, _ADD_K = 0x74, 0x54, 0x64, 0xAC, 0x24, 0x94, 0x04


def program(workers: int) -> list[tuple[int, int, int, int]]:
    """(code, jt, jf, k) for a group of the shared socket and `workers` own ones."""
    return [
        (_LD_B_ABS, 0, 0, _NET),  # 0: version and header length
        (_RSH_K, 0, 0, 4),
        (_JEQ_K, 8, 0, 6),  # IPv6: to 11
        (_LD_B_ABS, 0, 0, _NET),
        (_AND_K, 0, 0, 0x0F),
        (_LSH_K, 0, 0, 2),
        (_TAX, 0, 0, 0),  # X = IPv4 header length
        (_LD_H_IND, 0, 0, _NET),  # source port
        (_TAX, 0, 0, 0),
        (_LD_W_ABS, 0, 0, _NET + 12),  # source address
        (_JA, 0, 0, 3),  # to 14
        (_LD_H_ABS, 0, 0, _NET + 40),  # 11: IPv6 source port
        (_TAX, 0, 0, 0),
        (_LD_W_ABS, 0, 0, _NET + 20),  # last word of the source address
        (_XOR_X, 0, 0, 0),  # 14
        (_MUL_K, 0, 0, 2654435761),  # Knuth's multiplicative hash: ports step by 2
        (_RSH_K, 0, 0, 16),
        (_MOD_K, 0, 0, workers),
        (_ADD_K, 0, 0, 1),
        (_RET_A, 0, 0, 0),
    ]


def attach(sock: socket.socket, workers: int) -> None:
    """Steer `sock`'s reuseport group (sock is its index 0). Raises OSError if refused."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in program(workers))
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)

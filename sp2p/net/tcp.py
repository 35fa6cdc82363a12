"""Symmetric TCP (client.md §4.6): listen, advertise, dial, and the 'S' handshake.

Both peers listen and dial each other's advertised addresses at once; every
connection that completes the one-byte 0x53 exchange becomes a candidate
channel. Which candidate wins is decided by key confirmation (net/race.py), so a
stranger who connects first cannot take over the transfer (W14).
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import sys
import threading
from collections.abc import Callable

from sp2p.log import get_logger
from sp2p.net.addresses import parse_endpoint
from sp2p.net.channel import ChannelClosed, Outgoing, TransportKind
from sp2p.proto.constants import TCP_MAGIC, Role

log = get_logger(__name__)
#: ioctls (Linux) on a TCP socket's send queue: bytes not sent yet, bytes not acknowledged yet
_SIOCOUTQNSD = 0x894B
_TIOCOUTQ = 0x5411
#: offset of tcpi_rtt (microseconds) in Linux's struct tcp_info: 8 bytes of u8 fields, 15 u32
_TCPI_RTT = 68

DIAL_TIMEOUT = 5.0
#: sender waits this long for the 'S' echo per socket, receiver for the 'S' itself
SENDER_HANDSHAKE_TIMEOUT = 3.0
RECEIVER_HANDSHAKE_TIMEOUT = 5.0
#: peer-supplied addresses we dial at most (T19); Go stops at 8, we keep room for UPnP
MAX_PEER_ADDRESSES = 16
RECV_SIZE = 1 << 20
# Receive buffers are left to the kernel's autotuning: a fixed SO_RCVBUF is capped by
# net.core.rmem_max and measured 2.5x slower than autotuning on a 70 ms link. The send
# buffer is fixed only where that raises its ceiling (fixed_send_buffer).


def fixed_send_buffer() -> int | None:
    """The SO_SNDBUF to request, or None to leave the send buffer to autotuning.

    The send buffer bounds the bytes in flight. Autotuning grows it up to tcp_wmem[2] (4 MiB
    by default: 37 MB/s at 70 ms RTT); a request is capped at net.core.wmem_max and doubled.
    Where 2 x wmem_max is the larger, fixing it carries more (67 MB/s in
    scripts/bench_link.py); elsewhere (wmem_max is 208 KiB on most systems) it would shrink.
    """
    try:
        with open("/proc/sys/net/core/wmem_max") as f:  # /proc/sys/net: our own namespace's
            wmem_max = int(f.read())
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            autotune_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return None
    return wmem_max if 2 * wmem_max > autotune_max else None


class TcpChannel:
    """A connected socket as a `Channel`."""

    transport = TransportKind.TCP
    message_limit: int | None = None

    def __init__(self, sock: socket.socket, *, dialed: bool) -> None:
        sock.settimeout(None)
        self.sock = sock
        self.dialed = dialed
        #: the race's listener, kept open for parallel-TCP secondaries; closed with us
        self.spare_listener: socket.socket | None = None
        self._closed = False
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if (sndbuf := fixed_send_buffer()) is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)

    def send(self, data: Outgoing) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ChannelClosed(f"connection lost: {exc.strerror or exc}") from exc

    def recv(self, timeout: float | None = None) -> bytes:
        # The socket stays blocking: a timeout set here would also apply to a writer thread's
        # sendall() on the same socket, so waiting is done with poll/select instead.
        try:
            if timeout is not None and not _readable(self.sock, timeout):
                raise TimeoutError
            return self.sock.recv(RECV_SIZE)
        except TimeoutError:
            raise
        except (OSError, ValueError) as exc:  # ValueError: closed by another thread (fd -1)
            if self._closed:
                return b""
            raise ChannelClosed(f"connection lost: {getattr(exc, 'strerror', None) or exc}") from exc

    def close(self) -> None:
        self._closed = True
        self.close_spare_listener()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def parallel_tcp(self) -> TcpChannel:
        return self

    def peer_address(self) -> tuple[str, int]:
        address = self.sock.getpeername()
        return address[0], address[1]

    def adopt_listener(self, listener: socket.socket) -> None:
        self.close_spare_listener()
        self.spare_listener = listener

    def close_spare_listener(self) -> None:
        listener, self.spare_listener = self.spare_listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()

    @property
    def buffered_amount(self) -> int:
        """Bytes the kernel holds that it has not sent yet (0 where unknown): a backlog here
        means the link, not the sender, is behind (sp2p/proto/adapt.py)."""
        return self._send_queue(_SIOCOUTQNSD)

    @property
    def unacknowledged(self) -> int:
        """Bytes the peer has not acknowledged yet, sent or not (0 where unknown)."""
        return self._send_queue(_TIOCOUTQ)

    @property
    def round_trip(self) -> float | None:
        """The kernel's smoothed RTT (TCP_INFO's tcpi_rtt, Linux), None where unknown."""
        if sys.platform != "linux":
            return None
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_RTT + 4)
        except OSError:
            return None
        if len(info) < _TCPI_RTT + 4:
            return None
        micros = int.from_bytes(info[_TCPI_RTT : _TCPI_RTT + 4], sys.byteorder)
        return micros / 1e6 if micros else None

    @property
    def same_host(self) -> bool:
        """A loopback peer, or one at our own address (a TCP connection to ourselves)."""
        if self.sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        try:
            own, peer = self.sock.getsockname()[0], self.sock.getpeername()[0]
            return bool(own == peer or ipaddress.ip_address(peer.split("%")[0]).is_loopback)
        except (OSError, ValueError):
            return False

    def _send_queue(self, request: int) -> int:
        if sys.platform != "linux":
            return 0
        import fcntl

        try:
            raw = fcntl.ioctl(self.sock.fileno(), request, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(raw, sys.byteorder, signed=True)

    @property
    def peer(self) -> str:
        try:
            host, port = self.sock.getpeername()[:2]
        except OSError:
            return "?"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _readable(sock: socket.socket, timeout: float) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(max(timeout, 0.0) * 1000))
    ready, _, _ = select.select([sock], [], [], max(timeout, 0.0))
    return bool(ready)


def recv_exact(sock: socket.socket, n: int, timeout: float) -> bytes:
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError("closed during handshake")
        buf += part
    return bytes(buf)


def magic_handshake(sock: socket.socket, role: Role) -> bool:
    """The 0x53 exchange; True when the peer answered correctly in time."""
    magic = bytes([TCP_MAGIC])
    try:
        if role is Role.SENDER:
            sock.settimeout(SENDER_HANDSHAKE_TIMEOUT)
            sock.sendall(magic)
            return recv_exact(sock, 1, SENDER_HANDSHAKE_TIMEOUT) == magic
        if recv_exact(sock, 1, RECEIVER_HANDSHAKE_TIMEOUT) != magic:
            return False
        sock.sendall(magic)
        return True
    except OSError:
        return False


class TcpRace:
    """Listener plus dialers; hands every handshaken socket to `on_candidate`.

    `on_candidate` runs on the socket's own thread and owns the channel from then on.
    """

    def __init__(
        self,
        role: Role,
        on_candidate: Callable[[TcpChannel], None],
        *,
        allow_loopback: bool = False,
        on_status: Callable[[str], None] = lambda s: None,
    ) -> None:
        self.role = role
        self._on_candidate = on_candidate
        self._allow_loopback = allow_loopback
        self._on_status = on_status
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._stopped = threading.Event()
        self._pending: set[socket.socket] = set()
        self.listener = _listen()
        self.port: int = self.listener.getsockname()[1]
        # wakes the accept loop at once when the race ends (a poll timeout would hold it ~0.1 s)
        self._wake_r, self._wake_w = socket.socketpair()
        self.attempts = 0
        self.dropped = 0
        self.failures: list[str] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="sp2p-tcp-accept", daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        try:
            self._accept_until_stopped()
        finally:
            self._wake_r.close()

    def _accept_until_stopped(self) -> None:
        while not self._stopped.is_set():
            # wait on a wake socket too rather than block in accept(): detach_listener() must be
            # able to stop us without closing the listener, whose later connections belong to
            # parallel TCP
            try:
                ready, _, _ = select.select([self.listener, self._wake_r], [], [])
                if self.listener not in ready:
                    continue
                sock, addr = self.listener.accept()
            except (OSError, ValueError):  # ValueError: the listener was closed under select
                return
            if self._stopped.is_set():
                sock.close()
                return
            log.debug("tcp: accepted %s", addr)
            self._spawn(sock, dialed=False)

    def add_peer_address(self, text: str) -> bool:
        """Dial one address from a `direct` message; False when it is refused or a repeat."""
        if self._stopped.is_set():
            return False
        try:
            host, port = parse_endpoint(text)
        except ValueError:
            return self._drop("malformed")
        if not usable_peer_ip(host, allow_loopback=self._allow_loopback):
            return self._drop("unusable")
        key = f"{host}|{port}"
        with self._lock:
            if key in self._seen:
                return False  # a repeat is normal (the peer re-announces)
            if len(self._seen) >= MAX_PEER_ADDRESSES:
                return self._drop("excess")
            self._seen.add(key)
            self.attempts += 1
        threading.Thread(target=self._dial, args=(host, port), name="sp2p-tcp-dial", daemon=True).start()
        return True

    def _drop(self, why: str) -> bool:
        """One verbose line for all the peer addresses we drop (a flood must not flood the log)."""
        self.dropped += 1
        if self.dropped == 1:
            log.debug("tcp: ignoring %s peer addresses (at most %d are dialed; further ones are "
                      "dropped silently)", why, MAX_PEER_ADDRESSES)
        return False

    def _dial(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        with self._lock:
            self._pending.add(sock)
        try:
            sock.settimeout(DIAL_TIMEOUT)
            sock.connect((host, port))
        except OSError as exc:
            sock.close()
            with self._lock:
                self._pending.discard(sock)
                self.failures.append(f"{host}:{port}: {exc.strerror or exc}")
            return
        with self._lock:
            self._pending.discard(sock)
        self._spawn(sock, dialed=True)

    def _spawn(self, sock: socket.socket, *, dialed: bool) -> None:
        threading.Thread(
            target=self._handshake, args=(sock, dialed), name="sp2p-tcp-handshake", daemon=True
        ).start()

    def _handshake(self, sock: socket.socket, dialed: bool) -> None:
        if self._stopped.is_set() or not magic_handshake(sock, self.role):
            sock.close()
            return
        self._on_candidate(TcpChannel(sock, dialed=dialed))

    def stop(self) -> None:
        """Stop listening and dialing; candidate channels already handed out are not touched."""
        self._wake_acceptor()
        self._acceptor.join()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._close_pending()

    def detach_listener(self) -> socket.socket:
        """Stop the race but keep the listening socket open for the caller (parallel TCP)."""
        self._wake_acceptor()
        self._acceptor.join()
        self._close_pending()
        return self.listener

    def _wake_acceptor(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with contextlib.suppress(OSError):
            self._wake_w.close()

    def _close_pending(self) -> None:
        with self._lock:
            pending = list(self._pending)
        for sock in pending:
            with contextlib.suppress(OSError):
                sock.close()


def _listen() -> socket.socket:
    """Listen on all interfaces, dual-stack where the OS allows."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0))
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - peers on other hosts must reach us
    sock.listen(16)
    return sock


def usable_peer_ip(host: str, *, allow_loopback: bool) -> bool:
    """Only IP literals that can be a real peer: no loopback, link-local, multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return not (ip.is_unspecified or ip.is_link_local or ip.is_multicast or ip.is_reserved)

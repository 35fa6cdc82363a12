"""Admission control: client IP, fixed-window limiters, token buckets, connection caps.

All classes take an injected clock so tests can drive time; all are thread-safe.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from server.relay import Refusal
from sp2p.proto.signal import ErrorCode

Clock = Callable[[], float]


def _parse_ip(text: str) -> str | None:
    """An IP literal, optionally `[v6]:port` or `v4:port`; normalised, or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:  # the C round trip gives ipaddress's form, at a fraction of its cost (IPv6: 70 us)
        if ":" in text:
            normal = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
            if "." not in normal:  # else IPv4-mapped: ipaddress writes it in hex
                return normal
        else:
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except OSError:
        pass  # a scoped IPv6 address, or not an address: ipaddress decides
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(environ: Mapping[str, Any], *, trust_proxy: bool) -> str:
    """The client's IP for limits and logs.

    Without trust-proxy: the TCP peer. With it: the right-most `X-Forwarded-For` entry,
    i.e. the address our own proxy appended. WSGI servers join repeated header lines with
    commas, so the whole chain is walked from the right, never the client-controlled left
    (upstream W-7). A malformed right-most entry falls back to the TCP peer.
    """
    peer = str(environ.get("REMOTE_ADDR") or "")
    if trust_proxy:
        forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
        if forwarded.strip():
            hop = _parse_ip(forwarded.rsplit(",", 1)[-1])
            if hop is not None:
                return hop
    return _parse_ip(peer) or peer or "unknown"


class WindowLimiter:
    """At most `limit` events per key per window (0 = unlimited): the rule every limiter
    shares. Subclasses keep the counts (in memory here, in Redis in server.redis_store)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def hit(self, key: str) -> bool:
        """Count one event; False when the key is over its limit."""
        return self._limit <= 0 or self._count(key) <= self._limit

    def exceeded(self, key: str) -> bool:
        """True while the key is over its limit (without counting)."""
        return self._limit > 0 and self._current(key) >= self._limit

    def store_check(self, key: str) -> tuple[str, int] | None:
        """Counted in this process: no store script can check it."""
        return None

    def _count(self, key: str) -> int:
        """Count one event; the key's count in its window, this one included."""
        raise NotImplementedError

    def _current(self, key: str) -> int:
        """The key's count in its current window (0 if none)."""
        raise NotImplementedError


class FixedWindowLimiter(WindowLimiter):
    """Fixed windows counted in this process (upstream's /ws limiter)."""

    def __init__(self, limit: int, window: float = 60.0, *, clock: Clock = time.monotonic):
        super().__init__(limit)
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}
        self._next_prune = 0.0

    def _count(self, key: str) -> int:
        now = self._clock()
        with self._lock:
            self._prune(now)
            start, count = self._windows.get(key, (now, 0))
            if now - start > self._window:
                start, count = now, 0
            count += 1
            self._windows[key] = (start, count)
            return count

    def _current(self, key: str) -> int:
        now = self._clock()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
            return count if now - start <= self._window else 0

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + self._window
        stale = [k for k, (start, _) in self._windows.items() if now - start > 2 * self._window]
        for key in stale:
            del self._windows[key]


class TokenBucket:
    """Per-connection message budget: `rate` per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class ConnectionCounter:
    """Concurrent WebSockets, globally and per IP (upstream had no cap, W-8)."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self._max_total = max_total
        self._max_per_ip = max_per_ip
        self._lock = threading.Lock()
        self._total = 0
        self._per_ip: dict[str, int] = {}

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def acquire(self, ip: str) -> Refusal | None:
        with self._lock:
            if self._total >= self._max_total:
                return Refusal(ErrorCode.SERVER_BUSY, "server is at capacity, try again later")
            if self._per_ip.get(ip, 0) >= self._max_per_ip:
                return Refusal(ErrorCode.RATE_LIMITED, "too many connections from this IP")
            self._total += 1
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            return None

    def release(self, ip: str) -> None:
        with self._lock:
            self._total -= 1
            left = self._per_ip.get(ip, 0) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

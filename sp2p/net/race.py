"""Commit to a channel only when the peer's key-confirmation MAC arrives on it (W1, W14).

Every transport hands its candidate channels to `ConfirmationRace.offer`, each on its
own thread. The MAC is the raw 32 bytes that precede the first frame (client.md §2.3).
Writing first is what Go does; a side that reads first (our receiver, or any side
facing a browser) lets the peer decide which channel wins, so both ends always
agree, and a stranger without the key cannot win the race.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sp2p.errors import ConnectError, KeyConfirmationError
from sp2p.net.channel import Channel, ChannelClosed, PrefixedChannel, TransportKind
from sp2p.proto.constants import CONFIRM_BYTES
from sp2p.proto.keys import SessionKeys, wrong_code_error

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 15.0
#: after a wrong MAC, other candidates get this long to confirm before we call the code wrong;
#: short enough to answer a typo quickly, long enough that a stranger's garbage on our
#: listener cannot beat the real peer's channel
BAD_MAC_GRACE = 3.0


class ConfirmationRace:
    def __init__(
        self,
        keys: SessionKeys,
        *,
        read_first: bool,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        prefer_tcp_window: float = 0.0,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self._keys = keys
        #: called (on the confirming thread) once a winner is chosen, so a waiter wakes at once
        self._on_settled = on_settled
        self._read_first = read_first
        self._timeout = confirm_timeout
        self._prefer_tcp_window = prefer_tcp_window
        self._cond = threading.Condition()
        self._winner: Channel | None = None
        self._held: Channel | None = None  # a non-TCP win held while TCP may still confirm
        self._held_since = 0.0
        self._bad_mac = False
        self._bad_since = 0.0
        self._closed = False
        self._losers: list[Channel] = []

    def offer(self, channel: Channel) -> None:
        """Run confirmation on `channel` (blocking); keep it if it wins, else close it."""
        try:
            if not self._read_first:
                channel.send(self._keys.own_confirmation())
            mac, rest = self._read_mac(channel)
            self._keys.check_peer_confirmation(mac)
        except KeyConfirmationError:
            log.debug("confirmation failed on %s", channel.transport)
            if self._read_first:
                # answer with our MAC, so the writing side also sees a wrong code instead of a
                # peer that just left (it reveals nothing the peer's own MAC did not)
                try:
                    channel.send(self._keys.own_confirmation())
                except (ChannelClosed, OSError):
                    log.debug("could not tell the peer its MAC was wrong")
            with self._cond:
                if not self._bad_mac:
                    self._bad_mac, self._bad_since = True, time.monotonic()
                self._cond.notify_all()
            channel.close()
            return
        except (ChannelClosed, TimeoutError, OSError) as exc:
            log.debug("candidate %s dropped before confirming: %s", channel.transport, exc)
            channel.close()
            return
        confirmed: Channel = PrefixedChannel(channel, rest) if rest else channel
        self._settle(confirmed)

    def _settle(self, channel: Channel, *, may_hold: bool = True) -> None:
        with self._cond:
            if self._winner is not None or self._closed:
                self._losers.append(channel)
                loser: Channel | None = channel
            elif (
                may_hold
                and self._prefer_tcp_window
                and channel.transport is not TransportKind.TCP
                and self._held is None
            ):
                self._held, self._held_since = channel, time.monotonic()
                self._cond.notify_all()
                return
            else:
                loser = self._held if channel.transport is TransportKind.TCP else None
                self._winner, self._held = channel, None
                self._cond.notify_all()
                log.debug("confirmed %s", channel.transport)  # scripts/bench_start.py reads this
        if loser is not None:
            loser.close()
            if loser is channel:
                return
        if self._read_first:
            try:
                channel.send(self._keys.own_confirmation())
            except ChannelClosed:
                log.debug("winner closed before our confirmation went out")
        self._on_settled()

    def _read_mac(self, channel: Channel) -> tuple[bytes, bytes]:
        buf = b""
        deadline = time.monotonic() + self._timeout
        while len(buf) < CONFIRM_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("key confirmation timed out")
            part = channel.recv(timeout=remaining)
            if not part:
                raise ChannelClosed("closed during key confirmation")
            buf += part
        return buf[:CONFIRM_BYTES], buf[CONFIRM_BYTES:]

    def wait(self, timeout: float) -> Channel:
        """The confirmed channel. Raises KeyConfirmationError or ConnectError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._winner is None:
                now = time.monotonic()
                if self._held is not None and now - self._held_since >= self._prefer_tcp_window:
                    held, self._held = self._held, None
                    self._cond.release()
                    try:
                        self._settle(held, may_hold=False)
                    finally:
                        self._cond.acquire()
                    continue
                if now >= deadline:
                    break
                wake = deadline - now
                if self._held is not None:
                    wake = min(wake, self._held_since + self._prefer_tcp_window - now)
                self._cond.wait(max(wake, 0.01))
            if self._winner is not None:
                return self._winner
            bad = self._bad_mac
        if bad:
            raise wrong_code_error()
        raise ConnectError("could not establish a peer-to-peer connection")

    def poll(self) -> Channel | None:
        """The winner if there is one already, else None (settles an expired TCP-preference hold).

        Raises KeyConfirmationError once a wrong MAC was seen and nothing confirmed in the grace time.
        """
        with self._cond:
            if self._winner is not None:
                return self._winner
            if self._bad_mac and self._held is None and time.monotonic() - self._bad_since > BAD_MAC_GRACE:
                raise wrong_code_error()
            held = self._held
            expired = held is not None and time.monotonic() - self._held_since >= self._prefer_tcp_window
            if expired:
                self._held = None
        if expired and held is not None:
            self._settle(held, may_hold=False)
        return self._winner

    def poll_quiet(self) -> Channel | None:
        """The winner, or None; never raises."""
        with self._cond:
            return self._winner

    def restart_prefer_window(self) -> None:
        """A UPnP mapping just succeeded: give TCP a fresh window (client.md §4.5)."""
        with self._cond:
            if self._held is not None:
                self._held_since = time.monotonic()

    @property
    def bad_mac_seen(self) -> bool:
        return self._bad_mac

    def close(self) -> None:
        """Stop accepting winners; close any channel still held or late."""
        with self._cond:
            self._closed = True
            held, self._held = self._held, None
            losers, self._losers = self._losers, []
            self._cond.notify_all()
        for ch in [*losers, *([held] if held else [])]:
            ch.close()

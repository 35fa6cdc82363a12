"""Commit to a channel only when the peer's key-confirmation MAC arrives on it (W1, W14).

Every transport hands its candidate channels to `ConfirmationRace.offer`, each on its
own thread. The MAC is the raw 32 bytes that precede the first frame (client.md §2.3).
Writing first is what Go does; a side that reads first (our receiver, or any side
facing a browser) lets the peer decide which channel wins, so both ends always
agree, and a stranger without the key cannot win the race. Which confirmed channel
wins is decided by `sp2p.proto.race.RacePolicy`; this module only does the I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sp2p.errors import ConnectError, KeyConfirmationError
from sp2p.log import get_logger
from sp2p.net.channel import Channel, ChannelClosed, PrefixedChannel, TransportKind
from sp2p.proto.constants import CONFIRM_BYTES
from sp2p.proto.keys import SessionKeys, wrong_code_error
from sp2p.proto.race import Outcome, RacePolicy

log = get_logger(__name__)

CONFIRM_TIMEOUT = 15.0


class ConfirmationRace:
    """The blocking shell around `RacePolicy`: confirmation I/O, a Condition and the clock."""

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
        self._cond = threading.Condition()
        self._policy: RacePolicy[Channel] = RacePolicy(prefer_tcp_window=prefer_tcp_window)
        #: candidates between connected and their verdict (see `confirming`)
        self._confirming = 0

    def offer(self, channel: Channel) -> None:
        """Run confirmation on `channel` (blocking); keep it if it wins, else close it."""
        with self._cond:
            self._confirming += 1
        try:
            self._confirm(channel)
        finally:
            with self._cond:
                self._confirming -= 1
                self._cond.notify_all()

    def _confirm(self, channel: Channel) -> None:
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
                self._policy.bad_mac(time.monotonic())
                self._cond.notify_all()
            channel.close()
            return
        except (ChannelClosed, TimeoutError, OSError) as exc:
            log.debug("candidate %s dropped before confirming: %s", channel.transport, exc)
            channel.close()
            return
        confirmed: Channel = PrefixedChannel(channel, rest) if rest else channel
        with self._cond:
            tcp = confirmed.transport is TransportKind.TCP
            outcome = self._policy.confirmed(confirmed, tcp=tcp, now=time.monotonic())
            self._cond.notify_all()
        self._carry_out(outcome)

    def _carry_out(self, outcome: Outcome[Channel]) -> None:
        """Do what the policy decided; never under the lock (closing and sending block)."""
        for loser in outcome.close:
            loser.close()
        winner = outcome.winner
        if winner is None:
            return
        log.debug("confirmed %s", winner.transport)  # scripts/bench_start.py reads this
        if self._read_first:
            try:
                winner.send(self._keys.own_confirmation())
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
        policy = self._policy
        with self._cond:
            while policy.winner is None:
                now = time.monotonic()
                outcome = policy.handle_timer(now)
                if outcome.winner is not None or outcome.close:
                    self._cond.release()
                    try:
                        self._carry_out(outcome)
                    finally:
                        self._cond.acquire()
                    continue
                if now >= deadline:
                    break
                wake = deadline - now
                if (timer := policy.get_timer()) is not None:
                    wake = min(wake, timer - now)
                self._cond.wait(max(wake, 0.01))
            winner, bad = policy.winner, policy.bad_mac_seen
        if winner is not None:
            return winner
        if bad:
            raise wrong_code_error()
        raise ConnectError("could not establish a peer-to-peer connection")

    def poll(self) -> Channel | None:
        """The winner if there is one already, else None (settles an expired TCP-preference hold).

        Raises KeyConfirmationError once a wrong MAC was seen and nothing confirmed in the grace time.
        """
        with self._cond:
            if self._policy.winner is not None:
                return self._policy.winner
            now = time.monotonic()
            if self._policy.wrong_code(now):
                raise wrong_code_error()
            outcome = self._policy.handle_timer(now)
        self._carry_out(outcome)
        return self.poll_quiet()

    def poll_quiet(self) -> Channel | None:
        """The winner, or None; never raises."""
        with self._cond:
            return self._policy.winner

    def restart_prefer_window(self) -> None:
        """A UPnP mapping just succeeded: give TCP a fresh window (client.md §4.5)."""
        with self._cond:
            self._policy.restart_prefer_window(time.monotonic())

    @property
    def confirming(self) -> bool:
        """A connected candidate is still exchanging MACs: its verdict is worth waiting for."""
        with self._cond:
            return self._confirming > 0

    @property
    def bad_mac_seen(self) -> bool:
        return self._policy.bad_mac_seen

    def close(self) -> None:
        """Stop accepting winners; close any channel still held or late."""
        with self._cond:
            held = self._policy.close()
            self._cond.notify_all()
        for ch in held:
            ch.close()

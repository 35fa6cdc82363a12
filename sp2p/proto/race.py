"""Which confirmed channel wins the connection race (W1, W14, client.md §4.5): the policy
alone, fed events and `now`, with no threads, sockets or clock (`sp2p.net.race` is its shell).

Rules:

* the first channel whose key-confirmation MAC checks out wins; any later one is closed;
* with a TCP-preference window, a confirmed non-TCP channel is held for that long (from
  when it confirmed, or from the last `restart_prefer_window`) so that TCP may still win;
  a TCP channel confirming meanwhile wins and the held one is closed; once the window is
  over the held one wins;
* a wrong MAC does not end the race at once: the code is called wrong only when nothing
  confirmed (or is held) within `bad_mac_grace` of the first wrong MAC, so a stranger's
  garbage on our listener cannot beat the real peer.
"""

from __future__ import annotations

from typing import Final, Generic, TypeVar

from sp2p.record import record

#: after a wrong MAC, other candidates get this long to confirm before we call the code wrong;
#: short enough to answer a typo quickly, long enough that a stranger's garbage on our
#: listener cannot beat the real peer's channel
BAD_MAC_GRACE: Final = 3.0

C = TypeVar("C")


@record(frozen=True, slots=True)
class Outcome(Generic[C]):
    """What the shell must do after an event."""

    #: chosen just now: tell the peer (when we read first) and wake whoever waits
    winner: C | None = None
    #: channels that lost; the shell closes them
    close: tuple[C, ...] = ()


class RacePolicy(Generic[C]):
    def __init__(self, *, prefer_tcp_window: float = 0.0, bad_mac_grace: float = BAD_MAC_GRACE) -> None:
        self._window = prefer_tcp_window
        self._grace = bad_mac_grace
        #: the chosen channel, once there is one
        self.winner: C | None = None
        self._held: C | None = None
        self._held_since = 0.0
        self._bad_since: float | None = None
        self._closed = False

    @property
    def bad_mac_seen(self) -> bool:
        return self._bad_since is not None

    def confirmed(self, channel: C, *, tcp: bool, now: float) -> Outcome[C]:
        """`channel`'s peer MAC checked out."""
        if self.winner is not None or self._closed:
            return Outcome(close=(channel,))
        if self._window and not tcp and self._held is None:
            self._held, self._held_since = channel, now
            return Outcome()
        held, self._held = self._held, None
        self.winner = channel
        return Outcome(winner=channel, close=(held,) if held is not None else ())

    def bad_mac(self, now: float) -> None:
        """A candidate's MAC was wrong (the shell closes that candidate itself)."""
        if self._bad_since is None:
            self._bad_since = now

    def restart_prefer_window(self, now: float) -> None:
        """TCP got a new chance (a UPnP mapping just succeeded): the hold starts again."""
        if self._held is not None:
            self._held_since = now

    def get_timer(self) -> float | None:
        """When `handle_timer` has something to do: the end of the hold, if one runs."""
        return None if self._held is None else self._held_since + self._window

    def handle_timer(self, now: float) -> Outcome[C]:
        """Settle a hold whose window is over: the held channel wins."""
        held = self._held
        if held is None or now < self._held_since + self._window:
            return Outcome()
        self._held = None
        if self.winner is not None or self._closed:
            return Outcome(close=(held,))
        self.winner = held
        return Outcome(winner=held)

    def wrong_code(self, now: float) -> bool:
        """True once a wrong MAC was seen and nothing confirmed within the grace time."""
        return (
            self._bad_since is not None
            and self.winner is None
            and self._held is None
            and now - self._bad_since > self._grace
        )

    def close(self) -> tuple[C, ...]:
        """The race is over: later confirmations lose; returns a held channel to close."""
        self._closed = True
        held, self._held = self._held, None
        return (held,) if held is not None else ()

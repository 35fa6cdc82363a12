"""The liveness rule of both pipelines: when a peer counts as gone (client.md §3.12, security
case C15, protocol-extensions §2.3).

Sans-IO like the transfer machines: the pumps feed it what happened and `now`; it says when
to heartbeat and why to give up. Its limits are module constants, which
tests/support/scripted_cli.py scales down for real-process tests.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Final

from sp2p.errors import TransferTimeout
from sp2p.proto.constants import MsgType

#: peer is declared gone after this much silence once it has shown it sends heartbeats
HEARTBEAT_DEAD_AFTER: Final = 15.0
HEARTBEAT_INTERVAL: Final = 5.0
#: a peer that never sent a heartbeat (the Go CLI) only trips the 2-minute idle limit
IDLE_TIMEOUT: Final = 120.0
#: between two peers that announced heal (our CLIs, which heartbeat whenever they have sent
#: nothing for the interval), a path that delivers no byte for HEAL_DEAD_AFTER is dead: heal
#: it then, not after the idle limit (protocol-extensions §2.3)
HEAL_HEARTBEAT_INTERVAL: Final = 1.0
HEAL_DEAD_AFTER: Final = 8.0
#: the progress floor (security case C15): a peer we wait on must move the transfer forward by
#: PROGRESS_FLOOR bytes in every PROGRESS_WINDOW (~220 B/s, far below any real link; long
#: enough for a `-stdout | less` paused a few minutes), else it is holding us on purpose
PROGRESS_WINDOW: Final = 300.0
PROGRESS_FLOOR: Final = 64 * 1024


class Stall(Enum):
    """Why a peer is given up on (both end the transfer with TransferTimeout)."""

    SILENT = auto()  #: nothing from the peer for the silence limit
    NO_PROGRESS = auto()  #: under PROGRESS_FLOOR bytes of progress in a PROGRESS_WINDOW spent waiting on it


class Liveness:
    """The one liveness rule of both pipelines, on an injected clock (`now`, monotonic seconds).

    It is keyed on what the peer did, never on what we sent:
    * alive: a frame from the peer, or the link taking our data (it only does when the peer
      reads), within HEARTBEAT_DEAD_AFTER once the peer has sent a heartbeat, else IDLE_TIMEOUT;
    * progress: every PROGRESS_WINDOW the peer must have moved the transfer forward by
      PROGRESS_FLOOR bytes (data received, data taken, or a step such as Metadata or Complete).
      Heartbeats are never progress, so a peer cannot hold us with them alone.
    A window in which *we* were the bottleneck (our source stalled, our consumer paused) does
    not count against the peer: the pipeline calls `excuse`.
    """

    def __init__(self, now: float) -> None:
        self.last_sent = now
        self.last_heard = now
        self.peer_heartbeats = False
        #: both announced heal: heartbeat every HEAL_HEARTBEAT_INTERVAL, dead after HEAL_DEAD_AFTER
        self.quick = False
        self._window_start = now
        self._window_progress = 0

    def on_sent(self, now: float) -> None:
        """We wrote a frame: schedules our heartbeats, says nothing about the peer."""
        self.last_sent = now

    def on_received(self, now: float, frame_type: int, size: int = 0) -> None:
        self.last_heard = now
        if frame_type == MsgType.HEARTBEAT:
            self.peer_heartbeats = True
        else:
            self._window_progress += size if frame_type == MsgType.DATA else PROGRESS_FLOOR

    def on_bytes(self, now: float) -> None:
        """Raw bytes of a frame not yet complete arrived: the path is alive (not progress)."""
        self.last_heard = now

    def on_taken(self, now: float, size: int) -> None:
        """The link accepted `size` bytes of our data, which it does only as fast as the peer reads."""
        self.last_heard = now
        self._window_progress += size

    def excuse(self, now: float) -> None:
        """We are the bottleneck right now: restart the window (and the silence of a peer that
        never heartbeats, such as the Go CLI, which has nothing to say while we are idle)."""
        self._window_start = now
        self._window_progress = 0
        if not self.peer_heartbeats:
            self.last_heard = max(self.last_heard, now)

    def heartbeat_due(self, now: float) -> bool:
        return now - self.last_sent >= (HEAL_HEARTBEAT_INTERVAL if self.quick else HEARTBEAT_INTERVAL)

    def silence_limit(self) -> float:
        if self.quick:
            return HEAL_DEAD_AFTER
        return HEARTBEAT_DEAD_AFTER if self.peer_heartbeats else IDLE_TIMEOUT

    def peer_silent_for(self, now: float) -> float:
        return now - self.last_heard

    def check(self, now: float) -> Stall | None:
        """The reason to give up on the peer at `now`, if any; rolls the progress window."""
        if self.peer_silent_for(now) > self.silence_limit():
            return Stall.SILENT
        if now - self._window_start >= PROGRESS_WINDOW:
            if self._window_progress < PROGRESS_FLOOR:
                return Stall.NO_PROGRESS
            self._window_start, self._window_progress = now, 0
        return None


def stall_error(stall: Stall, peer: str, live: Liveness) -> TransferTimeout:
    """The one wording of a liveness failure, for either side (`peer` is "sender" or "receiver")."""
    if stall is Stall.SILENT:
        return TransferTimeout(f"the {peer} has been silent for {int(live.silence_limit())} s")
    return TransferTimeout(
        f"the {peer} made almost no progress in {int(PROGRESS_WINDOW)} s "
        f"(under {PROGRESS_FLOOR // 1024} KiB)",
        hint=f"the {peer}'s link or disk may be stalled, or it is holding the transfer on purpose",
    )

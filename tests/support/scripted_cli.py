"""The real CLI in a child process, with test-only changes that never ship:

* `--window S` / `--dead-after S` / `--idle-timeout S` / `--heartbeat S`: the liveness limits and heartbeat
  interval of sp2p.proto.liveness scaled down, so a stall shows in seconds instead of minutes (the
  rule itself is unchanged);
* `--first-attempt S`: the first direct connection attempt gives up after S instead of
  sp2p.flow.connect.ESTABLISH_TIMEOUT (30 s), for tests where it must fail (symmetric NATs, a forced
  transport that cannot cross); the relay retry and any heal keep the shipped limit;
* `--script NAME`: after the real signaling, key exchange and key confirmation, a hostile
  peer scripted from sp2p.proto replaces the transfer pipeline of this side.

Both run without the heal extension (`-reconnect 0`, unless the arguments say otherwise): the
limits scaled are the original rule's (a healing peer has its own quick rule,
docs/protocol-extensions.md §2.3), and a script owns its transfer, so nothing could continue it.

    python -m tests.support.scripted_cli [--window S] [--dead-after S] [--idle-timeout S] [--heartbeat S]
                                         [--first-attempt S] [--script NAME] -- <sp2p args>
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from sp2p.link.framed import FrameLink
from sp2p.proto import liveness
from sp2p.proto.constants import MsgType
from sp2p.proto.messages import Metadata, Totals

Script = Callable[[FrameLink], int]


def _pump_heartbeats(fc: FrameLink, until: Callable[[], bool], period: float = 1.0) -> int:
    """Send a heartbeat every `period` s and read (and drop) whatever comes, until the peer leaves."""
    next_beat = 0.0
    while not until():
        if time.monotonic() >= next_beat:
            if not fc.try_send_frame(MsgType.HEARTBEAT, b""):
                return 0
            next_beat = time.monotonic() + period
        try:
            if fc.recv_frame(timeout=0.2) is None:
                return 0
        except TimeoutError:
            continue
        except Exception:  # noqa: BLE001 - the victim tore the link down: the script is over
            return 0
    return 0


# -- hostile senders (replace sp2p.flow.send._transfer) ------------------------------------------
def heartbeats_only(fc: FrameLink) -> int:
    """C15: holds the receiver with heartbeats and never sends Metadata."""
    return _pump_heartbeats(fc, lambda: False)


def dribble(fc: FrameLink) -> int:
    """C15: announces 1 MiB, then sends one byte per half second (plus heartbeats)."""
    fc.send_frame(MsgType.METADATA, Metadata(name="dribble.bin", size=1 << 20).to_json())
    stop_at = [time.monotonic()]

    def one_byte() -> bool:
        if time.monotonic() - stop_at[0] >= 0.5:
            stop_at[0] = time.monotonic()
            if not fc.try_send_frame(MsgType.DATA, b"x"):
                return True
        return False

    return _pump_heartbeats(fc, one_byte)


def oversend(fc: FrameLink) -> int:
    """Announces 10 bytes and sends 20 (then more Data, as a flooding sender would)."""
    fc.send_frame(MsgType.METADATA, Metadata(name="over.bin", size=10).to_json())
    for _ in range(4):
        fc.try_send_frame(MsgType.DATA, b"0123456789" * 2)
    fc.try_send_frame(MsgType.DONE, Totals(80, 4, "0" * 64).to_json())
    return _pump_heartbeats(fc, lambda: False)


def tar_backslash(fc: FrameLink) -> int:
    """A folder whose one member climbs out with a backslash in its name."""
    import hashlib
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(BACKSLASH_MEMBER)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    body = buf.getvalue()
    fc.send_frame(MsgType.METADATA, Metadata(name="f", size=len(body), is_folder=True, file_count=1).to_json())
    fc.send_frame(MsgType.DATA, body)
    fc.try_send_frame(MsgType.DONE, Totals(len(body), 1, hashlib.sha256(body).hexdigest()).to_json())
    return _pump_heartbeats(fc, lambda: False)


#: the member name tar_backslash sends
BACKSLASH_MEMBER = "../a\\b.txt"


def switch_offer(fc: FrameLink) -> int:
    """C16: the preview showed the real file; the stream announces another one."""
    fc.send_frame(MsgType.METADATA, Metadata(name="other.exe", size=20).to_json())
    return _pump_heartbeats(fc, lambda: False)


# -- hostile receivers (replace sp2p.flow.receive._transfer) -------------------------------------
def never_complete(fc: FrameLink) -> int:
    """Item 1: reads everything and heartbeats, but never confirms (Complete never comes)."""
    return _pump_heartbeats(fc, lambda: False)


def send_metadata(fc: FrameLink) -> int:
    """A receiver that sends Metadata, which only a sender may."""
    fc.send_frame(MsgType.METADATA, Metadata(name="x", size=1).to_json())
    return _pump_heartbeats(fc, lambda: False)


def early_complete(fc: FrameLink) -> int:
    """A receiver that confirms before the sender said Done."""
    fc.send_frame(MsgType.COMPLETE, Totals(0, 0, "0" * 64).to_json())
    return _pump_heartbeats(fc, lambda: False)


SENDERS: dict[str, Script] = {
    "heartbeats-only": heartbeats_only, "dribble": dribble, "oversend": oversend, "tar-backslash": tar_backslash,
    "switch-offer": switch_offer,
}
RECEIVERS: dict[str, Script] = {
    "never-complete": never_complete, "send-metadata": send_metadata, "early-complete": early_complete,
    # announces resume, then only heartbeats: the sender waits for an offer that never comes
    "never-offer": never_complete,
}
#: scripts that leave the resume extension announced (the others run with -no-resume)
KEEP_RESUME = {"never-offer"}


# -- an honest sender with every compression setting (not hostile: issue 12) ---------------------
MIXED_LEVELS = "mixed-levels"


def _cycle_levels() -> None:
    """The real send pipeline, but chunk k gets setting k of the whole ladder (stored, fast, 1, 3,
    7, 11) in turn, whatever the measurements say; each used setting is printed to stderr."""
    from sp2p.link import send_pump
    from sp2p.net.tcp import TcpChannel
    from sp2p.proto.adapt import LevelController

    TcpChannel.same_host = property(lambda self: False)  # type: ignore[method-assign,assignment]

    class CyclingLevels(LevelController):
        def __init__(self, max_level: int, **kw: Any) -> None:
            super().__init__(9)
            self._turn = -1

        def next_level(self) -> int:
            self._turn += 1
            level = self.steps[self._turn % len(self.steps)]
            print(f"zstd-setting {level}", file=sys.stderr, flush=True)
            return level

        def on_compressed(self, level: int, raw_len: int, packed_len: int) -> None:
            pass

    send_pump.LevelController = CyclingLevels  # type: ignore[misc]


def first_attempt_within(seconds: float, establish: Callable[..., Any]) -> Callable[..., Any]:
    """`establish` (sp2p.flow.relay's) whose first call, establish_or_relay's direct attempt,
    gives up after `seconds`; later calls (the relay retry) keep their shipped limit."""
    from sp2p.record import replace

    calls = [0]

    def quick(signal: Any, keys: Any, peer: Any, opts: Any, *args: Any, **kw: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            opts = replace(opts, timeout=seconds)
        return establish(signal, keys, peer, opts, *args, **kw)

    return quick


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float)
    ap.add_argument("--dead-after", type=float)
    ap.add_argument("--idle-timeout", type=float)
    ap.add_argument("--heartbeat", type=float)
    ap.add_argument("--first-attempt", type=float)
    ap.add_argument("--script", choices=[*SENDERS, *RECEIVERS, MIXED_LEVELS])
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    ns = ap.parse_args()
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if ns.script and ns.script not in {*KEEP_RESUME, MIXED_LEVELS}:  # the script owns the transfer
        argv = [*argv[:1], "-no-resume", *argv[1:]]
    if (ns.script or ns.window or ns.dead_after or ns.idle_timeout) and "-reconnect" not in argv:
        argv = [*argv[:1], "-reconnect", "0", *argv[1:]]
    if ns.window is not None:
        liveness.PROGRESS_WINDOW = ns.window  # type: ignore[misc]
    if ns.dead_after is not None:
        liveness.HEARTBEAT_DEAD_AFTER = ns.dead_after  # type: ignore[misc]
    if ns.idle_timeout is not None:
        liveness.IDLE_TIMEOUT = ns.idle_timeout  # type: ignore[misc]
    if ns.heartbeat is not None:
        liveness.HEARTBEAT_INTERVAL = ns.heartbeat  # type: ignore[misc]
    if ns.first_attempt is not None:
        from sp2p.flow import relay

        relay.establish = first_attempt_within(ns.first_attempt, relay.establish)  # type: ignore[assignment]
    if ns.script == MIXED_LEVELS:
        _cycle_levels()
    elif ns.script in SENDERS:
        from sp2p.flow import send

        script = SENDERS[ns.script]

        def send_transfer(fc: FrameLink, *args: Any) -> int:
            return script(fc)

        send._transfer = send_transfer  # type: ignore[assignment]
    elif ns.script in RECEIVERS:
        from sp2p.flow import receive

        rscript = RECEIVERS[ns.script]

        def receive_transfer(fc: FrameLink, *args: Any) -> int:
            return rscript(fc)

        receive._transfer = receive_transfer  # type: ignore[assignment]
    from sp2p.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

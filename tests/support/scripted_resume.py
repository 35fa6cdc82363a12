"""The real CLI with one side of the resume / heal extensions made hostile (docs/protocol-extensions.md
§1–2), for tests with a real hostile peer process talking through the real server.

Frame scripts replace the transfer after the real signaling, key exchange and confirmation and
speak sp2p.proto directly; heal cases keep the real CLI and change one rule of sp2p.proto in this
process only (the keys of a reconnect, the answer to a heal offer, the offer itself).

    python -m tests.support.scripted_resume CASE -- <sp2p args>

Each script prints what it saw as `script: ...` lines on stderr.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import Any

from sp2p.link.framed import FrameLink
from sp2p.proto.constants import CancelReason, MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.heal import HealOffer, heal_accept_body
from sp2p.proto.messages import EMPTY_SHA256, Metadata, cancel_body
from sp2p.proto.resume import ResumeOffer, SourceIdentity, accept_body, parse_accept
from tests.support.scripted_cli import _pump_heartbeats


def say(text: str) -> None:
    print(f"script: {text}", file=sys.stderr, flush=True)


def next_frame(fc: FrameLink, timeout: float = 30.0) -> Frame:
    """The next frame that is not a heartbeat."""
    while True:
        frame = fc.recv_frame(timeout=timeout)
        if frame is None:
            raise SystemExit("script: the peer closed the link")
        if frame.msg_type != MsgType.HEARTBEAT:
            return frame


def _await_source(fc: FrameLink) -> tuple[Metadata, SourceIdentity]:
    meta = Metadata.from_json(next_frame(fc).body)
    source = SourceIdentity.from_json(next_frame(fc).body)
    return meta, source


# -- hostile receivers (replace sp2p.flow.receive._transfer; resume announced) --------------------
def offer_wrong_hash(fc: FrameLink) -> int:
    """Claims half the file with a prefix hash that cannot match: the sender must start from 0."""
    meta, _ = _await_source(fc)
    wrong = hashlib.sha256(b"not it").hexdigest()
    fc.send_frame(MsgType.RESUME_OFFER, ResumeOffer(meta.size // 2, wrong).to_json())
    accept = next_frame(fc)
    ok = accept.msg_type == MsgType.RESUME_ACCEPT
    say(f"accept {parse_accept(accept.body)}" if ok else f"got 0x{accept.msg_type:02x}")
    fc.try_send_frame(MsgType.CANCEL, cancel_body(CancelReason.USER_ABORT))
    return _pump_heartbeats(fc, lambda: False)


def offer_past_size(fc: FrameLink) -> int:
    meta, _ = _await_source(fc)
    fc.send_frame(MsgType.RESUME_OFFER, ResumeOffer(meta.size + 1, EMPTY_SHA256).to_json())
    return _pump_heartbeats(fc, lambda: False)


def offer_anyway(fc: FrameLink) -> int:
    """A ResumeOffer right after Metadata: on a folder, or without having announced resume."""
    next_frame(fc)
    fc.send_frame(MsgType.RESUME_OFFER, ResumeOffer(0).to_json())
    return _pump_heartbeats(fc, lambda: False)


# -- hostile senders (replace sp2p.flow.send._transfer, and send_resume where it runs) ------------
def source_unannounced(fc: FrameLink) -> int:
    """Resume never announced (-no-resume), yet a ResumeSource follows Metadata, then Data."""
    body = b"x" * 1000
    fc.send_frame(MsgType.METADATA, Metadata(name="evil.bin", size=len(body)).to_json())
    fc.send_frame(MsgType.RESUME_SOURCE, SourceIdentity.from_edges(len(body), 0, body, body).to_json())
    fc.try_send_frame(MsgType.DATA, body)
    return _pump_heartbeats(fc, lambda: False)


def _accept_other_offset(fc: FrameLink, machine: Any, path: str) -> int:
    """Answers the receiver's offer with an offset it never offered."""
    from sp2p.flow.resume import source_identity

    for kind, body in machine.start_resumable(source_identity(path)):
        fc.send_frame(kind, body)
    offer = ResumeOffer.from_json(next_frame(fc).body)
    say(f"offer {offer.offset}")
    fc.send_frame(MsgType.RESUME_ACCEPT, accept_body(offer.offset + 1))
    fc.try_send_frame(MsgType.DATA, b"y" * 1000)
    _pump_heartbeats(fc, lambda: False)
    raise SystemExit(0)


# -- heal cases: the real CLI with one rule changed ------------------------------------------------
def _wrong_heal_keys() -> None:
    """A reconnect with keys that are not the session's (another epoch's labels)."""
    from sp2p.proto.keys import SessionKeys

    real = SessionKeys.for_epoch

    def for_epoch(self: SessionKeys, epoch: int) -> SessionKeys:
        return real(self, epoch + 1000)

    SessionKeys.for_epoch = for_epoch  # type: ignore[method-assign]


def _accept_old_offset() -> None:
    """Sender: answers every heal offer with byte 0 and the whole stream again (a replay)."""
    from sp2p.proto.transfer import SenderMachine

    real = SenderMachine.on_position

    def on_position(self: SenderMachine, frame: Frame) -> Any:
        answer = real(self, frame)
        if answer is None:
            return None
        say(f"heal offer {HealOffer.from_json(frame.body)}, answering 0")
        return answer[0], (MsgType.HEAL_ACCEPT, heal_accept_body(0))

    SenderMachine.on_position = on_position  # type: ignore[method-assign]


def _offer_old_offset() -> None:
    """Receiver: asks for the stream again from byte 0, however much it wrote."""
    from sp2p.proto.transfer import ReceiverMachine

    real = ReceiverMachine.position

    def position(self: ReceiverMachine) -> tuple[MsgType, bytes]:
        real(self)
        say(f"wrote {self.digest.total_bytes}, offering 0")
        return MsgType.HEAL_OFFER, HealOffer(0, 0).to_json()

    ReceiverMachine.position = position  # type: ignore[method-assign]


Script = Callable[[FrameLink], int]
RECEIVERS: dict[str, Script] = {
    "offer-wrong-hash": offer_wrong_hash, "offer-past-size": offer_past_size, "offer-on-folder": offer_anyway,
    "offer-unannounced": offer_anyway,
}
SENDERS: dict[str, Script] = {"source-unannounced": source_unannounced}
PATCHES: dict[str, Callable[[], None]] = {
    "wrong-heal-keys": _wrong_heal_keys, "accept-old-offset": _accept_old_offset,
    "offer-old-offset": _offer_old_offset,
}
#: cases whose side does not announce resume
NO_RESUME = {"offer-unannounced", "source-unannounced"}
CASES = [*RECEIVERS, *SENDERS, "accept-other-offset", *PATCHES]


def main() -> int:
    case, argv = sys.argv[1], sys.argv[2:]
    argv = argv[1:] if argv[:1] == ["--"] else argv
    if case in NO_RESUME:
        argv = [*argv[:1], "-no-resume", *argv[1:]]
    from sp2p.flow import receive, send

    def pump(fc: FrameLink, *args: Any) -> int:
        return _pump_heartbeats(fc, lambda: False)

    if case in RECEIVERS:
        script = RECEIVERS[case]
        receive._transfer = lambda fc, *a: script(fc)  # type: ignore[assignment]
    elif case in SENDERS:
        sscript = SENDERS[case]
        send._transfer = lambda fc, *a: sscript(fc)  # type: ignore[assignment]
    elif case == "accept-other-offset":
        send.send_resume = _accept_other_offset  # type: ignore[assignment]
        send._transfer = pump  # type: ignore[assignment]
    else:
        PATCHES[case]()
    from sp2p.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

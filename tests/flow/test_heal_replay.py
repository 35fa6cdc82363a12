"""The sender's side of a stream heal across two reconnects, the second one in the middle of the
first one's replay (flow/heal.Replayed over sp2p.proto's window): the receiver gets every byte once."""

from __future__ import annotations

import hashlib

from sp2p.flow.heal import Replayed
from sp2p.link.send_pump import ChunkSource
from sp2p.proto.constants import MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.heal import HealOffer, ReplayWindow
from sp2p.proto.messages import Metadata
from sp2p.proto.transfer import SenderMachine

CHUNKS = [bytes([i]) * (4096 + i) for i in range(30)]


class Source:
    def __init__(self) -> None:
        self._left = list(CHUNKS)

    def read_chunk(self, size: int = 1 << 18) -> bytes | None:
        return self._left.pop(0) if self._left else b""


def send(machine: SenderMachine, source: ChunkSource, count: int) -> list[bytes]:
    """What the pipeline does: read, record (into the window), send."""
    out = []
    for _ in range(count):
        chunk = source.read_chunk()
        assert chunk
        machine.record_chunk(chunk)
        out.append(chunk)
    return out


def heal(machine: SenderMachine, at: int, rest: ChunkSource) -> tuple[SenderMachine, ChunkSource]:
    machine = SenderMachine.continuing(machine)
    machine.start_continuing()
    offset = sum(map(len, CHUNKS[:at]))
    answer = machine.on_position(Frame(MsgType.HEAL_OFFER, 0, HealOffer(offset, at).to_json()))
    assert answer is not None
    return machine, Replayed(answer[0], rest)


def test_second_heal_inside_a_replay_loses_and_repeats_nothing() -> None:
    machine = SenderMachine(Metadata(name="s", size=0, stream_mode=True), window=ReplayWindow(1 << 20))
    machine.start()
    rest: ChunkSource = Source()
    assert send(machine, rest, 12) == CHUNKS[:12]  # the receiver wrote 8 of them
    machine, rest = heal(machine, 8, rest)
    assert send(machine, rest, 2) == CHUNKS[8:10]  # broken again inside the replay of 8..11
    machine, rest = heal(machine, 9, rest)
    got = CHUNKS[:9] + send(machine, rest, len(CHUNKS) - 9)
    assert got == CHUNKS
    assert rest.read_chunk() == b""
    assert machine.digest.totals().sha256 == hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    assert machine.digest.chunk_count == len(CHUNKS)

"""Heal of folders and streams: versions, the replay window, both machines across a reconnect,
the hostile offers, and the quick liveness rule (protocol-extensions §2.1, §2.3, §2.6)."""

from __future__ import annotations

import hashlib

import pytest

from sp2p.errors import PeerCancelled, RemoteProtocolError, VerificationError
from sp2p.proto.constants import MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.heal import (
    Continuation,
    DigestState,
    HealOffer,
    OutOfWindow,
    ReplayWindow,
    continuation,
    heal_accept_body,
    parse_heal_accept,
    spoken,
)
from sp2p.proto.liveness import (
    HEAL_DEAD_AFTER,
    IDLE_TIMEOUT,
    Liveness,
    Stall,
)
from sp2p.proto.messages import Metadata, error_body
from sp2p.proto.transfer import (
    DataReceived,
    DoneReceived,
    HealAccepted,
    MetadataReceived,
    ReceiverMachine,
    ReceiverState,
    SenderMachine,
    SenderState,
)

FOLDER = Metadata(name="dir", size=1 << 20, is_folder=True, file_count=3, compression="zstd")
STREAM = Metadata(name="stdin", size=0, stream_mode=True)
FILE = Metadata(name="a.bin", size=100)
CHUNKS = [bytes([i]) * (1000 + i) for i in range(20)]


def frame(kind: int, body: bytes = b"") -> Frame:
    return Frame(kind, 0, body)


# -- versions ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("ours", "theirs", "want"), [(2, 2, 2), (2, 1, 1), (1, 2, 1), (0, 2, 0), (2, 0, 0)])
def test_the_lower_version_is_spoken(ours: int, theirs: int, want: int) -> None:
    assert spoken(ours, theirs) == want


@pytest.mark.parametrize(
    ("version", "resumes", "meta", "want"),
    [
        (0, True, FILE, Continuation.NONE),
        (1, True, FILE, Continuation.RESUME),
        (1, False, FILE, Continuation.NONE),  # a v1 peer heals a file only through its partial
        (1, True, FOLDER, Continuation.NONE),
        (1, True, STREAM, Continuation.NONE),
        (2, True, FILE, Continuation.RESUME),
        (2, False, FILE, Continuation.STREAM),  # -stdout / -no-resume receiver
        (2, True, FOLDER, Continuation.STREAM),
        (2, True, STREAM, Continuation.STREAM),
    ],
)
def test_both_sides_derive_the_same_continuation(version: int, resumes: bool, meta: Metadata,
                                                 want: Continuation) -> None:
    assert continuation(version, resumes=resumes, meta=meta) is want


# -- bodies -----------------------------------------------------------------------------------
def test_bodies_round_trip_and_reject_bad_values() -> None:
    assert HealOffer.from_json(HealOffer(5, 2).to_json()) == HealOffer(5, 2)
    assert HealOffer.from_json(b'{"OFFSET":7,"Chunks":1,"x":0}') == HealOffer(7, 1)
    assert parse_heal_accept(heal_accept_body(9)) == 9
    for bad in (b'{"offset":-1,"chunks":0}', b'{"offset":"1","chunks":0}', b'{"offset":true,"chunks":0}',
                b"[]", b"{", b'{"offset":9223372036854775808,"chunks":0}'):
        with pytest.raises(RemoteProtocolError):
            HealOffer.from_json(bad)


# -- the window -------------------------------------------------------------------------------
def _filled(limit: int) -> tuple[ReplayWindow, hashlib._Hash, int]:
    win = ReplayWindow(limit)
    sha = hashlib.sha256()
    total = 0
    for i, c in enumerate(CHUNKS):
        win.push(DigestState(sha.copy(), total, i), c)
        sha.update(c)
        total += len(c)
    return win, sha, total


def test_window_rewinds_to_a_chunk_start_with_the_digest_there() -> None:
    win, sha, total = _filled(1 << 20)
    end = DigestState(sha, total, len(CHUNKS))
    at = sum(map(len, CHUNKS[:7]))
    state, replay = win.rewind(HealOffer(at, 7), end)
    assert replay == CHUNKS[7:]
    assert (state.total_bytes, state.chunk_count) == (at, 7)
    assert state.sha.hexdigest() == hashlib.sha256(b"".join(CHUNKS[:7])).hexdigest()
    # what was rewound left the window: it is pushed again as it is re-sent
    with pytest.raises(RemoteProtocolError, match="only"):
        win.rewind(HealOffer(at + 1, 8), DigestState(state.sha, at, 7))


def test_window_at_the_end_replays_nothing() -> None:
    win, sha, total = _filled(1 << 20)
    end = DigestState(sha, total, len(CHUNKS))
    assert win.rewind(HealOffer(total, len(CHUNKS)), end) == (end, [])


def test_window_keeps_at_least_its_limit_and_refuses_older_offsets() -> None:
    win, sha, total = _filled(5000)
    end = DigestState(sha, total, len(CHUNKS))
    kept = sum(map(len, CHUNKS[-5:]))
    assert kept >= 5000 > kept - len(CHUNKS[-5])
    state, replay = win.rewind(HealOffer(total - kept, len(CHUNKS) - 5), end)
    assert replay == CHUNKS[-5:]
    win, sha, total = _filled(5000)
    with pytest.raises(OutOfWindow, match=r"cannot continue the transfer: the receiver needs it from byte 0"):
        win.rewind(HealOffer(0, 0), DigestState(sha, total, len(CHUNKS)))


@pytest.mark.parametrize(
    ("offer", "match"),
    [
        (HealOffer(10**9, 20), "only"),  # past what was sent
        (HealOffer(0, 21), "only"),  # more frames than were sent
        (HealOffer(1001, 1), "not at a frame boundary"),  # byte 1000 starts frame 1
        (HealOffer(1000, 2), "starts frame 1, not 2"),
    ],
)
def test_window_refuses_offers_that_were_never_true(offer: HealOffer, match: str) -> None:
    win, sha, total = _filled(1 << 20)
    with pytest.raises(RemoteProtocolError, match=match):
        win.rewind(offer, DigestState(sha, total, len(CHUNKS)))


# -- both machines across a reconnect ---------------------------------------------------------
def _first_epoch(meta: Metadata, sent: int, written: int) -> tuple[SenderMachine, ReceiverMachine]:
    """`sent` chunks left the sender, the receiver wrote the first `written`; then the link broke."""
    s = SenderMachine(meta, window=ReplayWindow(1 << 20))
    r = ReceiverMachine(resume=False, heal=2)  # a file continues so only when resume is not spoken
    assert isinstance(r.on_frame(frame(*s.start())), MetadataReceived)
    for c in CHUNKS[:sent]:
        s.record_chunk(c)
    for c in CHUNKS[:written]:
        assert isinstance(r.on_frame(frame(MsgType.DATA, c)), DataReceived)
        r.record_plaintext(c)
    s.fail()
    r.fail()
    return s, r


def _reconnect(s0: SenderMachine, r0: ReceiverMachine) -> tuple[SenderMachine, ReceiverMachine, list[bytes]]:
    s, r = SenderMachine.continuing(s0), ReceiverMachine.continuing(r0)
    assert isinstance(r.on_frame(frame(*s.start_continuing())), MetadataReceived)
    assert (s.state, r.state) == (SenderState.AWAIT_POSITION, ReceiverState.POSITIONING)
    offer = r.position()
    assert s.on_position(frame(MsgType.HEARTBEAT)) is None
    answer = s.on_position(frame(*offer))
    assert answer is not None
    replay, accept = answer
    assert r.on_frame(frame(*accept)) == HealAccepted(r0.digest.total_bytes)
    assert (s.state, r.state) == (SenderState.SENDING, ReceiverState.RECEIVING)
    return s, r, replay


@pytest.mark.parametrize("meta", [FOLDER, STREAM, FILE], ids=["folder", "stream", "file-to-stdout"])
def test_stream_continues_and_done_covers_every_byte_once(meta: Metadata) -> None:
    meta = meta if meta is not FILE else Metadata(name="a.bin", size=sum(map(len, CHUNKS)))
    s, r = _first_epoch(meta, sent=15, written=9)
    s, r, replay = _reconnect(s, r)
    assert replay == CHUNKS[9:15]
    # twice broken: the second reconnect rewinds into what the first one re-sent
    for c in [*replay, *CHUNKS[15:17]]:
        s.record_chunk(c)
    for c in CHUNKS[9:12]:
        r.on_frame(frame(MsgType.DATA, c))
        r.record_plaintext(c)
    s.fail()
    r.fail()
    s, r, replay = _reconnect(s, r)
    assert replay == CHUNKS[12:17]
    for c in [*replay, *CHUNKS[17:]]:
        s.record_chunk(c)
        r.on_frame(frame(MsgType.DATA, c))
        r.record_plaintext(c)
    assert isinstance(r.on_frame(frame(*s.finish())), DoneReceived)
    kind, body = r.complete()
    assert s.on_frame(frame(kind, body)) == (MsgType.FIN_ACK, b"")
    whole = b"".join(CHUNKS)
    assert r.digest.totals().sha256 == hashlib.sha256(whole).hexdigest()
    assert (r.digest.total_bytes, r.digest.chunk_count) == (len(whole), len(CHUNKS))


def test_receiver_refuses_a_different_transfer_after_reconnecting() -> None:
    s, r = _first_epoch(FOLDER, sent=3, written=3)
    r = ReceiverMachine.continuing(r)
    other = Metadata(name="dir", size=FOLDER.size + 1, is_folder=True, file_count=3, compression="zstd")
    with pytest.raises(RemoteProtocolError, match="another transfer"):
        r.on_frame(frame(MsgType.METADATA, other.to_json()))
    assert r.state is ReceiverState.FAILED


@pytest.mark.parametrize("first", [MsgType.DATA, MsgType.HEAL_ACCEPT, MsgType.DONE])
def test_receiver_wants_metadata_first_after_reconnecting(first: MsgType) -> None:
    _, r = _first_epoch(FOLDER, sent=3, written=3)
    r = ReceiverMachine.continuing(r)
    with pytest.raises(RemoteProtocolError, match="expected metadata"):
        r.on_frame(frame(first, heal_accept_body(0) if first == MsgType.HEAL_ACCEPT else b"x"))


@pytest.mark.parametrize("offset", [0, 1, 10**6])
def test_receiver_refuses_an_accept_at_another_offset(offset: int) -> None:
    """A sender replaying an old offset (or jumping ahead) must not splice the stream."""
    s, r = _first_epoch(FOLDER, sent=5, written=3)
    s, r = SenderMachine.continuing(s), ReceiverMachine.continuing(r)
    r.on_frame(frame(*s.start_continuing()))
    r.position()
    with pytest.raises(RemoteProtocolError, match="continues at byte"):
        r.on_frame(frame(MsgType.HEAL_ACCEPT, heal_accept_body(offset)))


def test_before_metadata_a_reconnect_positions_at_zero_and_a_file_resumes_afresh() -> None:
    r = ReceiverMachine.continuing(ReceiverMachine(resume=True, heal=2))
    assert isinstance(r.on_frame(frame(MsgType.METADATA, STREAM.to_json())), MetadataReceived)
    assert r.position() == (MsgType.HEAL_OFFER, HealOffer(0, 0).to_json())
    resumed = ReceiverMachine(resume=True, heal=2)
    resumed.on_frame(frame(MsgType.METADATA, FILE.to_json()))
    r = ReceiverMachine.continuing(resumed)
    r.on_frame(frame(MsgType.METADATA, FILE.to_json()))
    assert r.state is ReceiverState.AWAIT_SOURCE  # through the partial (§1), with a fresh digest
    assert r.digest is not resumed.digest


def test_heal_frames_outside_a_reconnect_are_protocol_errors() -> None:
    r = ReceiverMachine(resume=True, heal=2)
    r.on_frame(frame(MsgType.METADATA, FOLDER.to_json()))
    with pytest.raises(RemoteProtocolError, match="unexpected message type 0x24"):
        r.on_frame(frame(MsgType.HEAL_ACCEPT, heal_accept_body(0)))
    s = SenderMachine(FOLDER, window=ReplayWindow())
    s.start()
    with pytest.raises(RemoteProtocolError, match="unexpected message type 0x23"):
        s.on_frame(frame(MsgType.HEAL_OFFER, HealOffer(0, 0).to_json()))


def test_sender_out_of_window_and_peer_stop() -> None:
    s0 = SenderMachine(STREAM, window=ReplayWindow(3000))
    s0.start()
    for c in CHUNKS:
        s0.record_chunk(c)
    s = SenderMachine.continuing(s0)
    s.start_continuing()
    with pytest.raises(OutOfWindow):
        s.on_position(frame(MsgType.HEAL_OFFER, HealOffer(0, 0).to_json()))
    assert s.state is SenderState.FAILED
    s = SenderMachine.continuing(s0)
    s.start_continuing()
    with pytest.raises(PeerCancelled):
        s.on_position(frame(MsgType.CANCEL, b"\x01"))
    s = SenderMachine.continuing(s0)
    s.start_continuing()
    with pytest.raises(Exception, match="boom"):
        s.on_position(frame(MsgType.ERROR, error_body("boom")))


def test_a_replay_that_differs_fails_the_end_to_end_check() -> None:
    """The window is the sender's memory; if it ever sent other bytes, Done/Complete catch it."""
    s, r = _first_epoch(STREAM, sent=6, written=4)
    s, r, replay = _reconnect(s, r)
    for c in [b"X" + replay[0][1:], *replay[1:], *CHUNKS[6:]]:
        r.on_frame(frame(MsgType.DATA, c))
        r.record_plaintext(c)
    for c in [*replay, *CHUNKS[6:]]:
        s.record_chunk(c)
    r.on_frame(frame(*s.finish()))
    with pytest.raises(VerificationError, match="integrity"):
        r.complete()


# -- quick liveness ---------------------------------------------------------------------------
def test_quick_liveness_notices_a_dead_path_without_prior_heartbeats() -> None:
    slow, quick = Liveness(0.0), Liveness(0.0)
    quick.quick = True
    assert slow.check(HEAL_DEAD_AFTER + 1) is None  # the original rule waits for the idle limit
    assert slow.check(IDLE_TIMEOUT + 1) is Stall.SILENT
    assert quick.check(HEAL_DEAD_AFTER - 0.5) is None
    assert quick.check(HEAL_DEAD_AFTER + 0.5) is Stall.SILENT
    assert quick.heartbeat_due(1.0) and not slow.heartbeat_due(1.0)


def test_bytes_of_an_incomplete_frame_keep_the_path_alive_but_are_not_progress() -> None:
    live = Liveness(0.0)
    live.quick = True
    for t in range(1, 300):
        live.on_bytes(float(t))
        assert live.check(float(t)) is None or t >= 300
    assert live.check(300.0) is Stall.NO_PROGRESS

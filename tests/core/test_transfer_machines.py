"""Sender/receiver machines driven as traces (C5, C6, C17, T1-T3)."""

from __future__ import annotations

import hashlib
import json

import pytest

from sp2p.errors import (
    LocalProtocolError,
    PeerCancelled,
    RemoteError,
    RemoteProtocolError,
    VerificationError,
)
from sp2p.proto.constants import CancelReason, MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.liveness import (
    PROGRESS_FLOOR,
    PROGRESS_WINDOW,
    Liveness,
    Stall,
)
from sp2p.proto.messages import (
    EMPTY_SHA256,
    Metadata,
    Totals,
    cancel_body,
    error_body,
    parse_error_body,
)
from sp2p.proto.transfer import (
    DataReceived,
    DoneReceived,
    MetadataReceived,
    ReceiverMachine,
    ReceiverState,
    SenderMachine,
    SenderState,
    TransferFinished,
)

META = Metadata(name="a.txt", size=11, type="text/plain; charset=utf-8")


def f(kind: MsgType | int, body: bytes = b"") -> Frame:
    return Frame(int(kind), 0, body)


def run_pair(chunks: list[bytes], meta: Metadata = META) -> tuple[SenderMachine, ReceiverMachine]:
    s, r = SenderMachine(meta), ReceiverMachine()
    kind, body = s.start()
    assert isinstance(r.on_frame(f(kind, body)), MetadataReceived)
    for c in chunks:
        s.record_chunk(c)
        ev = r.on_frame(f(MsgType.DATA, c))
        assert isinstance(ev, DataReceived)
        r.record_plaintext(ev.body)
    kind, body = s.finish()
    assert isinstance(r.on_frame(f(kind, body)), DoneReceived)
    kind, body = r.complete()
    fin = s.on_frame(f(kind, body))
    assert fin == (MsgType.FIN_ACK, b"")
    assert isinstance(r.on_frame(f(*fin)), TransferFinished)
    return s, r


def test_full_trace_and_go_json_layout() -> None:
    s, r = run_pair([b"hello ", b"world"])
    assert s.state is SenderState.FINISHED and r.state is ReceiverState.FINISHED
    assert META.to_json() == (
        b'{"name":"a.txt","size":11,"type":"text/plain; charset=utf-8","isFolder":false,"streamMode":false}'
    )
    assert r.digest.totals().sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_empty_transfer() -> None:
    s, _ = run_pair([], Metadata(name="empty", size=0))
    assert s.digest.totals() == Totals(0, 0, EMPTY_SHA256)


def test_metadata_json_omissions_and_case_insensitive_read() -> None:
    m = Metadata(name="d", size=5, is_folder=True, file_count=3, compression="zstd")
    assert json.loads(m.to_json())["fileCount"] == 3
    assert "fileCount" not in json.loads(Metadata(name="x", size=1).to_json())
    odd = b'{"NAME":"x","Size":3,"isfolder":true,"extra":{"a":1}}'
    assert Metadata.from_json(odd) == Metadata(name="x", size=3, is_folder=True)


def test_heartbeats_are_ignored_everywhere() -> None:
    r = ReceiverMachine()
    assert r.on_frame(f(MsgType.HEARTBEAT)) is None
    r.on_frame(f(MsgType.METADATA, META.to_json()))
    assert r.on_frame(f(MsgType.HEARTBEAT)) is None
    s = SenderMachine(META)
    s.start()
    assert s.on_frame(f(MsgType.HEARTBEAT)) is None


@pytest.mark.parametrize(
    "first",
    [f(MsgType.DATA, b"x"), f(MsgType.DONE, Totals(0, 0, EMPTY_SHA256).to_json()), f(0xFF)],
)
def test_c5_out_of_state_first_frame(first: Frame) -> None:
    with pytest.raises(RemoteProtocolError, match="expected metadata"):
        ReceiverMachine().on_frame(first)


@pytest.mark.parametrize("kind", [MsgType.METADATA, MsgType.COMPLETE, MsgType.FIN_ACK, 0xFF, MsgType.PARALLEL_PROBE])
def test_c5_out_of_state_while_receiving(kind: int) -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, META.to_json()))
    with pytest.raises(RemoteProtocolError, match="unexpected message type"):
        r.on_frame(f(kind, META.to_json()))
    assert r.state is ReceiverState.FAILED


def test_c5_sender_rejects_complete_while_sending() -> None:
    s = SenderMachine(META)
    s.start()
    with pytest.raises(RemoteProtocolError):
        s.on_frame(f(MsgType.COMPLETE, Totals(0, 0, EMPTY_SHA256).to_json()))


def test_c6_connection_closed_early() -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, META.to_json()))
    r.on_frame(f(MsgType.DATA, b"hello"))
    with pytest.raises(RemoteProtocolError, match="incomplete"):
        r.on_eof()


def test_c6d_done_with_other_totals() -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, Metadata(name="s", size=0, stream_mode=True).to_json()))
    r.record_plaintext(b"abc")
    r.on_frame(f(MsgType.DONE, Totals(4, 1, EMPTY_SHA256).to_json()))
    with pytest.raises(VerificationError, match="verification mismatch"):
        r.complete()


def test_t3_hash_mismatch_at_done_and_complete() -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, Metadata(name="s", size=3).to_json()))
    r.record_plaintext(b"abc")
    r.on_frame(f(MsgType.DONE, Totals(3, 1, "0" * 64).to_json()))
    with pytest.raises(VerificationError, match="integrity check failed"):
        r.complete()
    s = SenderMachine(META)
    s.start()
    s.record_chunk(b"abc")
    s.finish()
    with pytest.raises(VerificationError, match="integrity check failed"):
        s.on_frame(f(MsgType.COMPLETE, Totals(3, 1, "0" * 64).to_json()))


def test_t2_more_than_announced_stops_at_first_extra_byte() -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, Metadata(name="s", size=4).to_json()))
    r.record_plaintext(b"abcd")
    with pytest.raises(VerificationError, match="more than the announced"):
        r.record_plaintext(b"e")


def test_t2_fewer_than_announced_fails_at_done() -> None:
    r = ReceiverMachine()
    r.on_frame(f(MsgType.METADATA, Metadata(name="s", size=4).to_json()))
    r.record_plaintext(b"abc")
    r.on_frame(f(MsgType.DONE, Totals(3, 1, hashlib.sha256(b"abc").hexdigest()).to_json()))
    with pytest.raises(VerificationError, match="incomplete"):
        r.complete()


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"","size":1}',
        b'{"name":".","size":1}',
        b'{"name":"..","size":1}',
        b'{"name":"a\\u0000b","size":1}',
        b'{"name":"' + b"x" * 256 + b'","size":1}',
        b'{"name":"a","size":-1}',
        b'{"name":"a","size":9223372036854775808}',
        b'{"name":"a","size":"12"}',
        b'{"name":"a","size":1,"isFolder":"yes"}',
        b'{"name":"a","size":1,"fileCount":-2}',
        b'{"name":"a","size":1,"compression":"gzip"}',
        b"[" * 2000 + b"]" * 2000,
        b'{"name":"\xff\xfe","size":1}',
        b"not json",
        b"x" * 5000,
    ],
)
def test_t1_malicious_metadata(body: bytes) -> None:
    r = ReceiverMachine()
    with pytest.raises(RemoteProtocolError):
        r.on_frame(f(MsgType.METADATA, body))
    assert r.metadata is None


def test_peer_cancel_and_error_frames() -> None:
    r = ReceiverMachine()
    with pytest.raises(PeerCancelled) as info:
        r.on_frame(f(MsgType.CANCEL, cancel_body(CancelReason.USER_ABORT)))
    assert info.value.reason == CancelReason.USER_ABORT
    s = SenderMachine(META)
    s.start()
    with pytest.raises(RemoteError, match="receiver error: disk full"):
        s.on_frame(f(MsgType.ERROR, error_body("disk full")))


def test_c17_error_text_is_bounded_and_raw_text_is_kept_for_the_ui() -> None:
    assert len(error_body("x" * 10_000_000)) <= 4096
    assert parse_error_body(b"\xff\xfe not json").startswith("(malformed)")
    evil = "\x1b]0;pwned\x07\r"
    assert parse_error_body(error_body(evil)) == evil  # escaping happens at display time


def test_local_misuse_is_a_local_protocol_error() -> None:
    s = SenderMachine(META)
    with pytest.raises(LocalProtocolError):
        s.finish()
    r = ReceiverMachine()
    with pytest.raises(LocalProtocolError):
        r.complete()


def test_liveness_with_injected_clock() -> None:
    live = Liveness(now=100.0)
    assert not live.heartbeat_due(104.0) and live.heartbeat_due(105.0)
    live.on_taken(100.0, PROGRESS_FLOOR)
    assert live.check(219.0) is None  # a peer that never heartbeats gets the idle limit
    assert live.check(221.0) is Stall.SILENT
    live.on_received(221.0, MsgType.HEARTBEAT)
    assert live.check(236.0) is None and live.check(236.5) is Stall.SILENT


def test_liveness_is_keyed_on_the_peer_never_on_what_we_sent() -> None:
    """Issue 16 item 1: our own heartbeats going out never make a silent peer look alive."""
    live = Liveness(now=0.0)
    live.on_received(1.0, MsgType.HEARTBEAT)
    for t in range(2, 40):
        live.on_sent(float(t))
    assert live.check(16.5) is Stall.SILENT


def test_heartbeats_alone_never_satisfy_the_progress_floor() -> None:
    """Issue 16 item 2 (C15): a peer that only heartbeats, or dribbles, is given up on."""
    live = Liveness(now=0.0)
    t = 0.0
    while (stall := live.check(t)) is None:
        t += 1.0
        live.on_received(t, MsgType.HEARTBEAT)
        live.on_received(t, MsgType.DATA, 1)
    assert stall is Stall.NO_PROGRESS and t == PROGRESS_WINDOW


def test_a_slow_link_and_our_own_stalls_pass_the_floor() -> None:
    live = Liveness(now=0.0)
    for t in range(1, 3 * int(PROGRESS_WINDOW)):  # ~1 KiB/s: slower than any real link
        live.on_received(float(t), MsgType.DATA, 1024)
        assert live.check(float(t)) is None
    paused = Liveness(now=0.0)  # our consumer paused for an hour: the sender heartbeats, we excuse it
    for t in range(1, 3600):
        paused.on_received(float(t), MsgType.HEARTBEAT)
        paused.excuse(float(t))
        assert paused.check(float(t)) is None
    live = Liveness(now=0.0)
    live.on_received(10.0, MsgType.METADATA)  # a step such as Metadata or Complete is progress
    live.on_received(PROGRESS_WINDOW - 1, MsgType.HEARTBEAT)
    assert live.check(PROGRESS_WINDOW) is None

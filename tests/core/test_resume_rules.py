"""Resume extension: the machines as traces, the hostile cases, the announcement (protocol-extensions §1)."""

from __future__ import annotations

import hashlib

import pytest

from sp2p.errors import LocalProtocolError, RemoteProtocolError, VerificationError
from sp2p.proto.constants import MsgType
from sp2p.proto.frames import Frame
from sp2p.proto.messages import EMPTY_SHA256, Metadata, Totals
from sp2p.proto.resume import ResumeOffer, SourceIdentity, accept_body, negotiated, parse_accept
from sp2p.proto.signal import Crypto
from sp2p.proto.transfer import (
    DataReceived,
    MetadataReceived,
    ReceiverMachine,
    ReceiverState,
    ResumeAccepted,
    SenderMachine,
    SenderState,
    SourceReceived,
)

DATA = bytes(range(256)) * 40  # 10240 bytes
META = Metadata(name="a.bin", size=len(DATA), type="application/octet-stream")
FOLDER = Metadata(name="dir", size=4096, is_folder=True, file_count=1)
SOURCE = SourceIdentity.from_edges(len(DATA), 1_700_000_000_000_000_000, DATA[:1024], DATA[-1024:])


def frame(kind: int, body: bytes = b"") -> Frame:
    return Frame(kind, 0, body)


def sha(data: bytes) -> hashlib._Hash:
    return hashlib.sha256(data)


def run_pair(held: int, sender_prefix: bytes | None) -> tuple[SenderMachine, ReceiverMachine, int]:
    """Drive both machines through the handshake; returns the agreed offset."""
    s = SenderMachine(META)
    r = ReceiverMachine(resume=True)
    out = s.start_resumable(SOURCE)
    assert [k for k, _ in out] == [MsgType.METADATA, MsgType.RESUME_SOURCE]
    assert isinstance(r.on_frame(frame(*out[0])), MetadataReceived)
    assert r.state is ReceiverState.AWAIT_SOURCE
    event = r.on_frame(frame(*out[1]))
    assert event == SourceReceived(SOURCE)
    kind, body = r.offer(held, sha(DATA[:held]) if held else None)
    assert s.on_offer(frame(MsgType.HEARTBEAT)) is None
    offer = s.on_offer(frame(kind, body))
    assert offer is not None
    offset, (kind, body) = s.accept(offer, sha(sender_prefix) if sender_prefix is not None else None)
    accepted = r.on_frame(frame(kind, body))
    assert accepted == ResumeAccepted(offset)
    assert (s.state, r.state) == (SenderState.SENDING, ReceiverState.RECEIVING)
    return s, r, offset


def finish(s: SenderMachine, r: ReceiverMachine, offset: int) -> None:
    rest = DATA[offset:]
    for i in range(0, len(rest), 4096):
        chunk = rest[i : i + 4096]
        s.record_chunk(chunk)
        assert isinstance(r.on_frame(frame(MsgType.DATA, chunk)), DataReceived)
        r.record_plaintext(chunk)
    kind, body = s.finish()
    r.on_frame(frame(kind, body))
    kind, body = r.complete()
    totals = Totals.from_json(body)
    assert totals.total_bytes == len(DATA)  # the whole file …
    assert totals.sha256 == hashlib.sha256(DATA).hexdigest()  # … verified end to end
    assert s.on_frame(frame(kind, body)) == (MsgType.FIN_ACK, b"")


def test_matching_prefix_resumes_and_the_hash_covers_the_whole_file() -> None:
    s, r, offset = run_pair(6000, DATA[:6000])
    assert offset == 6000
    finish(s, r, offset)


def test_nothing_held_starts_at_zero() -> None:
    s, r, offset = run_pair(0, None)
    assert offset == 0
    finish(s, r, 0)


def test_wrong_prefix_hash_means_full_resend() -> None:
    changed = bytearray(DATA[:6000])
    changed[3000] ^= 1
    s, r, offset = run_pair(6000, bytes(changed))
    assert offset == 0
    finish(s, r, 0)


def test_unreadable_sender_prefix_means_full_resend() -> None:
    s, r, offset = run_pair(6000, None)
    assert offset == 0
    finish(s, r, 0)


def test_offset_past_the_announced_size_is_refused() -> None:
    s = SenderMachine(META)
    s.start_resumable(SOURCE)
    body = ResumeOffer(len(DATA) + 1, hashlib.sha256(b"x").hexdigest()).to_json()
    with pytest.raises(RemoteProtocolError, match="past the announced size"):
        s.on_offer(frame(MsgType.RESUME_OFFER, body))
    assert s.state is SenderState.FAILED


def test_offer_for_a_folder_is_a_protocol_error() -> None:
    s = SenderMachine(FOLDER)
    with pytest.raises(LocalProtocolError):
        s.start_resumable(SOURCE)  # we never offer resume for a folder …
    s = SenderMachine(FOLDER)
    s.start()
    with pytest.raises(RemoteProtocolError, match="unexpected message type 0x21"):
        s.on_frame(frame(MsgType.RESUME_OFFER, ResumeOffer(10).to_json()))  # … nor accept an offer


def test_offer_from_a_peer_that_never_announced() -> None:
    s = SenderMachine(META)
    s.start()  # resume not negotiated
    with pytest.raises(RemoteProtocolError, match="unexpected message type 0x21"):
        s.on_frame(frame(MsgType.RESUME_OFFER, ResumeOffer(0).to_json()))


@pytest.mark.parametrize("kind", [MsgType.RESUME_SOURCE, MsgType.RESUME_ACCEPT])
def test_resume_frames_to_a_receiver_that_never_announced(kind: MsgType) -> None:
    r = ReceiverMachine(resume=False)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    body = SOURCE.to_json() if kind == MsgType.RESUME_SOURCE else accept_body(0)
    with pytest.raises(RemoteProtocolError, match="unexpected message type"):
        r.on_frame(frame(kind, body))


def test_receiver_insists_on_the_source_after_metadata() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    with pytest.raises(RemoteProtocolError):
        r.on_frame(frame(MsgType.DATA, b"x"))


def test_folder_metadata_skips_the_handshake() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, FOLDER.to_json()))
    assert r.state is ReceiverState.RECEIVING


def test_sender_cannot_choose_another_offset() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    r.on_frame(frame(MsgType.RESUME_SOURCE, SOURCE.to_json()))
    r.offer(6000, sha(DATA[:6000]))
    with pytest.raises(RemoteProtocolError, match="we offered 6000"):
        r.on_frame(frame(MsgType.RESUME_ACCEPT, accept_body(100)))
    assert r.state is ReceiverState.FAILED


def test_data_before_the_accept_is_refused() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    r.on_frame(frame(MsgType.RESUME_SOURCE, SOURCE.to_json()))
    r.offer(0, None)
    with pytest.raises(RemoteProtocolError):
        r.on_frame(frame(MsgType.DATA, b"x"))


def test_source_size_must_match_metadata() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    other = SourceIdentity(len(DATA) + 1, 0, EMPTY_SHA256, EMPTY_SHA256)
    with pytest.raises(RemoteProtocolError, match="size differs"):
        r.on_frame(frame(MsgType.RESUME_SOURCE, other.to_json()))


def test_resumed_stream_cannot_grow_past_the_announced_size() -> None:
    _s, r, offset = run_pair(6000, DATA[:6000])
    r.on_frame(frame(MsgType.DATA, DATA[6000:]))
    r.record_plaintext(DATA[6000:])
    with pytest.raises(VerificationError, match="more than the announced"):
        r.record_plaintext(b"x")


def test_offer_outside_the_size_is_our_bug() -> None:
    r = ReceiverMachine(resume=True)
    r.on_frame(frame(MsgType.METADATA, META.to_json()))
    r.on_frame(frame(MsgType.RESUME_SOURCE, SOURCE.to_json()))
    with pytest.raises(LocalProtocolError):
        r.offer(len(DATA) + 1, sha(b""))


@pytest.mark.parametrize(
    "body",
    [
        b'{"offset":-1,"prefixSha256":"' + EMPTY_SHA256.encode() + b'"}',
        b'{"offset":1,"prefixSha256":"zz"}',
        b'{"offset":"1","prefixSha256":"' + EMPTY_SHA256.encode() + b'"}',
        b"[]",
        b"x" * 5000,
    ],
)
def test_malformed_offers(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ResumeOffer.from_json(body)


def test_messages_round_trip_and_ignore_unknown_fields() -> None:
    assert SourceIdentity.from_json(SOURCE.to_json()) == SOURCE
    assert ResumeOffer.from_json(b'{"Offset":5,"prefixSHA256":"' + EMPTY_SHA256.upper().encode() + b'","x":1}') == (
        ResumeOffer(5, EMPTY_SHA256)
    )
    assert parse_accept(accept_body(7)) == 7


def test_partial_key_binds_name_and_source() -> None:
    key = SOURCE.partial_key("a.bin")
    assert len(key) == 32
    assert key != SOURCE.partial_key("b.bin")
    other = SourceIdentity(SOURCE.size, SOURCE.mtime_ns + 1, SOURCE.head_sha256, SOURCE.tail_sha256)
    assert key != other.partial_key("a.bin")


def test_announcement_in_crypto() -> None:
    assert Crypto("k", resume=1).to_payload() == {"publicKey": "k", "resume": 1}
    assert Crypto("k").to_payload() == {"publicKey": "k"}  # exactly what Go sends
    assert Crypto.from_payload({"publicKey": "k", "resume": 1}).resume == 1
    # a field of another meaning under the same name never breaks the key exchange
    assert Crypto.from_payload({"publicKey": "k", "resume": "yes"}).resume == 0
    assert Crypto.from_payload({"publicKey": "k", "resume": True}).resume == 0
    assert negotiated(1, 1)
    assert not negotiated(1, 0)
    assert not negotiated(0, 1)

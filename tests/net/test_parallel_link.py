"""Parallel TCP pieces over real loopback sockets: secondary handshakes, negotiation, the
multi-stream link's ordering rules (W2) and its strictness about data indices (W22)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sp2p.errors import IntegrityError, RemoteProtocolError
from sp2p.flow import parallel
from sp2p.link.framed import FramedChannel
from sp2p.link.multistream import MultiStreamLink
from sp2p.net.secondary import accept_secondaries, dial_secondaries
from sp2p.net.tcp import TcpChannel
from sp2p.proto.constants import MsgType
from sp2p.proto.frames import FrameSealer
from sp2p.proto.messages import Metadata, Totals
from sp2p.proto.parallel import pack_data_index, secondary_hello
from tests.support.files import session_keys


def _listener() -> socket.socket:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    return lst


def _tcp_pair(lst: socket.socket) -> tuple[TcpChannel, TcpChannel]:
    dialer = socket.create_connection(lst.getsockname())
    acceptor, _ = lst.accept()
    return TcpChannel(dialer, dialed=True), TcpChannel(acceptor, dialed=False)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    lst = _listener()
    yield lst
    lst.close()


# -- secondary handshakes -----------------------------------------------------------------------
def test_secondaries_connect_and_strangers_are_refused(listener: socket.socket) -> None:
    token = bytes(range(16))
    addr = listener.getsockname()
    strangers = [
        socket.create_connection(addr),  # silent: must not hold up the real ones
        socket.create_connection(addr),  # wrong token
        socket.create_connection(addr),  # index out of range
    ]
    strangers[1].sendall(secondary_hello(bytes(16), 1))
    strangers[2].sendall(bytes([0x54]) + token + bytes([4]))
    deadline = time.monotonic() + 3
    got: dict[int, TcpChannel] = {}
    acceptor = threading.Thread(target=lambda: got.update(accept_secondaries(listener, token, 3, deadline)))
    acceptor.start()
    dialed = dial_secondaries(addr, token, 3, deadline)
    acceptor.join()
    try:
        assert sorted(dialed) == sorted(got) == [1, 2, 3]
        for s in strangers[1:]:
            s.settimeout(2)
            assert s.recv(1) == b""  # closed without an acknowledgement
        # the pairs are really connected index to index
        dialed[2].send(b"two")
        assert got[2].recv(timeout=2) == b"two"
    finally:
        for ch in [*dialed.values(), *got.values()]:
            ch.close()
        for s in strangers:
            s.close()


def test_a_duplicate_index_is_closed(listener: socket.socket) -> None:
    token = bytes(16)
    deadline = time.monotonic() + 1.5
    got: dict[int, TcpChannel] = {}
    acceptor = threading.Thread(target=lambda: got.update(accept_secondaries(listener, token, 2, deadline)))
    acceptor.start()
    first = socket.create_connection(listener.getsockname())
    first.sendall(secondary_hello(token, 1))
    first.settimeout(2)
    assert first.recv(1) == b"T"
    again = socket.create_connection(listener.getsockname())
    again.sendall(secondary_hello(token, 1))
    again.settimeout(3)
    assert again.recv(1) == b""
    acceptor.join()
    assert sorted(got) == [1]
    for ch in got.values():
        ch.close()
    first.close()
    again.close()


# -- negotiation ------------------------------------------------------------------------------
def _negotiate(
    listener: socket.socket, size: int, forced_s: int, forced_r: int
) -> tuple[object, object]:
    ks, kr = session_keys()
    s_ch, r_ch = _tcp_pair(listener)
    r_ch.spare_listener = _listener()  # the acceptor side keeps its race listener
    s_fc, r_fc = FramedChannel(s_ch, ks), FramedChannel(r_ch, kr)
    out: dict[str, object] = {}

    def receiver() -> None:
        out["r"] = parallel.receiver_link(r_fc, kr, forced_r)

    # the sender dialed the primary, so it dials the secondaries to the receiver's listener:
    # point its primary's "remote address" there by dialing from the receiver's listener port
    assert r_ch.spare_listener is not None
    s_ch.sock.close()
    s_ch.sock = socket.create_connection(r_ch.spare_listener.getsockname())
    peer, _ = r_ch.spare_listener.accept()
    r_ch.sock.close()
    r_ch.sock = peer
    t = threading.Thread(target=receiver)
    t.start()
    out["s"] = parallel.sender_link(s_fc, ks, size, forced_s)
    t.join()
    return out["s"], out["r"]


def test_negotiation_agrees_on_the_smaller_count(listener: socket.socket) -> None:
    s_link, r_link = _negotiate(listener, size=1, forced_s=5, forced_r=3)
    try:
        assert isinstance(s_link, MultiStreamLink) and isinstance(r_link, MultiStreamLink)
        assert s_link.streams == r_link.streams == 3
        _exchange(s_link, r_link, chunks=7)
    finally:
        s_link.close()  # type: ignore[attr-defined]
        r_link.close()  # type: ignore[attr-defined]


def test_small_transfer_without_forcing_stays_single(listener: socket.socket) -> None:
    s_link, r_link = _negotiate(listener, size=1 << 20, forced_s=0, forced_r=0)
    try:
        assert isinstance(s_link, FramedChannel) and isinstance(r_link, FramedChannel)
    finally:
        s_link.close()
        r_link.close()


def test_receiver_refuses_a_non_negotiation_frame(listener: socket.socket) -> None:
    ks, kr = session_keys()
    s_ch, r_ch = _tcp_pair(listener)
    s_fc, r_fc = FramedChannel(s_ch, ks), FramedChannel(r_ch, kr)
    try:
        s_fc.send_frame(MsgType.METADATA, Metadata(name="x", size=1).to_json())
        with pytest.raises(RemoteProtocolError, match="negotiation"):
            parallel.receiver_link(r_fc, kr, 0)
    finally:
        s_fc.close()
        r_fc.close()


def _exchange(s_link: object, r_link: object, chunks: int) -> None:
    assert isinstance(s_link, MultiStreamLink) and isinstance(r_link, MultiStreamLink)
    payloads = [bytes([i]) * (1000 + i) for i in range(chunks)]
    frames = [(MsgType.METADATA, Metadata(name="x", size=sum(map(len, payloads))).to_json())]
    frames += [(MsgType.DATA, p) for p in payloads]
    frames.append((MsgType.DONE, Totals(0, chunks, "0" * 64).to_json()))
    for kind, body in frames:
        s_link.send_sealed(s_link.seal(s_link.reserve(kind), kind, body))
    got = [r_link.recv_frame(timeout=5) for _ in frames]
    assert [(f.msg_type, f.body) for f in got if f is not None] == frames


# -- the multi-stream link --------------------------------------------------------------------
@pytest.fixture
def links(listener: socket.socket) -> Iterator[tuple[MultiStreamLink, MultiStreamLink]]:
    ks, kr = session_keys()
    pairs = [_tcp_pair(listener) for _ in range(3)]
    s_primary, r_primary = FramedChannel(pairs[0][0], ks), FramedChannel(pairs[0][1], kr)
    s_link = MultiStreamLink(s_primary, [(p[0], *ks.parallel_keys(i)) for i, p in enumerate(pairs[1:], 1)])
    r_link = MultiStreamLink(r_primary, [(p[1], *kr.parallel_keys(i)) for i, p in enumerate(pairs[1:], 1)])
    yield s_link, r_link
    s_link.close()
    r_link.close()


def test_done_waits_for_data_still_in_flight_w2(links: tuple[MultiStreamLink, MultiStreamLink]) -> None:
    s_link, r_link = links
    plan = [(MsgType.METADATA, Metadata(name="x", size=6).to_json())]
    plan += [(MsgType.DATA, b"d%d" % i) for i in range(3)]
    plan.append((MsgType.DONE, Totals(6, 3, "0" * 64).to_json()))
    sealed = [s_link.seal(s_link.reserve(k), k, b) for k, b in plan]
    # stream 0 gets Metadata, data 0 and Done at once; data 1 and 2 (streams 1, 2) come later
    for item in sealed:
        if item.stream == 0:
            s_link.send_sealed(item)
    first = r_link.recv_frame(timeout=2)
    second = r_link.recv_frame(timeout=2)
    assert first is not None and first.msg_type == MsgType.METADATA
    assert second is not None and second.body == b"d0"
    with pytest.raises(TimeoutError):  # Done must not overtake data 1 and 2
        r_link.recv_frame(timeout=0.3)
    for item in sealed:
        if item.stream != 0:
            s_link.send_sealed(item)
    rest = [r_link.recv_frame(timeout=2) for _ in range(3)]
    assert [(f.msg_type, f.body) for f in rest if f is not None] == [
        (MsgType.DATA, b"d1"), (MsgType.DATA, b"d2"), (MsgType.DONE, plan[-1][1])
    ]


def test_cancel_overtakes_missing_data(links: tuple[MultiStreamLink, MultiStreamLink]) -> None:
    s_link, r_link = links
    meta = s_link.seal(s_link.reserve(MsgType.METADATA), MsgType.METADATA, Metadata(name="x", size=1).to_json())
    s_link.reserve(MsgType.DATA)  # data 0 reserved, never written
    s_link.send_sealed(meta)
    s_link.send_frame(MsgType.CANCEL, b"\x01")
    kinds = [r_link.recv_frame(timeout=2) for _ in range(2)]
    assert [f.msg_type for f in kinds if f is not None] == [MsgType.METADATA, MsgType.CANCEL]


def test_a_replayed_data_index_is_an_integrity_error(listener: socket.socket) -> None:
    ks, kr = session_keys()
    pairs = [_tcp_pair(listener) for _ in range(2)]
    r_link = MultiStreamLink(FramedChannel(pairs[0][1], kr), [(pairs[1][1], *kr.parallel_keys(1))])
    try:
        forged = FrameSealer(ks.parallel_keys(1)[0])
        # stream 1 of 2 must carry indices 1, 3, 5...; index 2 is some other stream's frame
        pairs[1][0].send(forged.seal(MsgType.DATA, pack_data_index(1) + b"ok"))
        pairs[1][0].send(forged.seal(MsgType.DATA, pack_data_index(2) + b"replayed"))
        with pytest.raises(IntegrityError, match="data index 2"):
            r_link.recv_frame(timeout=3)
    finally:
        r_link.close()
        pairs[0][0].close()
        pairs[1][0].close()

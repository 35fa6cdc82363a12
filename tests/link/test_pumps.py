"""The transfer pipelines over a real loopback TCP connection, without signaling: what the
throughput work relies on (reused frame buffers, zero-copy decoding, zstd on the reading
thread) must never change a byte or hide an error from the sender."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from sp2p.errors import ConnectionLost, RemoteProtocolError
from sp2p.link.framed import FramedChannel
from sp2p.link.receive_pump import ReceivePipeline
from sp2p.link.send_pump import SendPipeline
from sp2p.link.sinks import make_sink
from sp2p.link.sources import FullChunkSource
from sp2p.net.tcp import TcpChannel
from sp2p.proto.compression import ChunkCompressor
from sp2p.proto.constants import MAX_CHUNK_SIZE, MsgType
from sp2p.proto.messages import Metadata, Totals, parse_error_body
from sp2p.proto.transfer import SenderMachine
from tests.support.files import open_under, session_keys


@pytest.fixture
def link() -> Iterator[tuple[FramedChannel, FramedChannel]]:
    lst = socket.create_server(("127.0.0.1", 0))
    dialer = socket.create_connection(lst.getsockname())
    acceptor, _ = lst.accept()
    lst.close()
    ks, kr = session_keys()
    s_fc = FramedChannel(TcpChannel(dialer, dialed=True), ks)
    r_fc = FramedChannel(TcpChannel(acceptor, dialed=False), kr)
    yield s_fc, r_fc
    s_fc.close()
    r_fc.close()


def _text(size: int) -> bytes:
    line = b"2026-11-25T06:00:00Z INFO request id=%08d path=/api/v1/items status=200\n"
    return b"".join(line % i for i in range(size // len(line) + 1))[:size]


@pytest.mark.parametrize(
    ("kind", "size", "level"),
    [
        ("random", 5 * MAX_CHUNK_SIZE + 12345, 0),
        ("text", 7 * MAX_CHUNK_SIZE + 1, 3),
        ("random", 3 * MAX_CHUNK_SIZE, 3),
        ("random", 0, 0),
    ],
)
def test_round_trip_through_both_pipelines(
    link: tuple[FramedChannel, FramedChannel], tmp_path: Path, kind: str, size: int, level: int
) -> None:
    s_fc, r_fc = link
    data = os.urandom(size) if kind == "random" else _text(size)
    src = tmp_path / "input.bin"
    src.write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    meta = Metadata(name="input.bin", size=size, compression="zstd" if level else "")
    sent: list[Totals] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with src.open("rb", buffering=0) as f:
                pipe = SendPipeline(s_fc, SenderMachine(meta), level=max(level, 1), workers=2)
                sent.append(pipe.run(FullChunkSource(f, what="input", expected_size=size), compress=bool(level)))
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    received = ReceivePipeline(r_fc).run(
        lambda m: make_sink(m, outdir=out, to_stdout=False), on_metadata=lambda m: None
    )
    sender.join(30)
    assert not errors, errors
    assert sent == [received]
    assert received.sha256 == hashlib.sha256(data).hexdigest()
    assert received.chunk_count == -(-size // MAX_CHUNK_SIZE)
    assert (out / "input.bin").read_bytes() == data


def test_reused_frame_buffers_never_mix_frames(link: tuple[FramedChannel, FramedChannel]) -> None:
    """Sealed frames of every size, interleaved with control frames, each arrive intact."""
    s_fc, r_fc = link
    sizes = (MAX_CHUNK_SIZE, 1, 0, 70_000, MAX_CHUNK_SIZE, 3, 300_000, MAX_CHUNK_SIZE - 1)
    bodies = [os.urandom(n) for n in sizes] * 12

    def send() -> None:
        for i, body in enumerate(bodies):
            s_fc.send_sealed(s_fc.seal(s_fc.reserve(MsgType.DATA), MsgType.DATA, body))
            if i % 5 == 0:
                s_fc.send_frame(MsgType.HEARTBEAT, b"")

    sender = threading.Thread(target=send)
    sender.start()
    got: list[bytes] = []
    while len(got) < len(bodies):
        frame = r_fc.recv_frame(timeout=10)
        assert frame is not None
        if frame.msg_type == MsgType.DATA:
            got.append(bytes(frame.body))
    sender.join()
    assert got == bodies


def _bad_zstd_transfer(link: tuple[FramedChannel, FramedChannel], tmp_path: Path, body: bytes) -> str:
    """A sender announcing zstd, then sending `body` as Data; returns the receiver's Error text."""
    s_fc, r_fc = link
    out = tmp_path / "out"
    out.mkdir()
    meta = Metadata(name="x.bin", size=MAX_CHUNK_SIZE, compression="zstd")
    s_fc.send_frame(MsgType.METADATA, meta.to_json())
    s_fc.send_frame(MsgType.DATA, ChunkCompressor(3).compress(b"fine " * 100))
    s_fc.send_frame(MsgType.DATA, body)
    with pytest.raises(RemoteProtocolError) as raised:
        ReceivePipeline(r_fc).run(lambda m: make_sink(m, outdir=out, to_stdout=False), on_metadata=lambda m: None)
    r_fc.close()  # as receive.py does once the pipeline returned
    assert list(out.iterdir()) == []  # the partial file is gone
    kinds = []
    message = ""
    while (frame := s_fc.recv_frame(timeout=5)) is not None:
        kinds.append(frame.msg_type)
        if frame.msg_type == MsgType.ERROR:
            message = parse_error_body(frame.body)
    assert kinds[-2:] == [MsgType.ERROR, MsgType.CANCEL]
    assert message == str(raised.value)
    return message


def test_a_corrupt_zstd_body_reaches_the_sender_as_an_error(
    link: tuple[FramedChannel, FramedChannel], tmp_path: Path
) -> None:
    good = ChunkCompressor(3).compress(b"hello " * 1000)
    message = _bad_zstd_transfer(link, tmp_path, good[:-5] + b"\x00" * 5)
    assert message.startswith("decompression failed")


def test_a_zstd_bomb_is_refused_before_decoding(link: tuple[FramedChannel, FramedChannel], tmp_path: Path) -> None:
    bomb = zstandard.ZstdCompressor(level=3).compress(bytes(MAX_CHUNK_SIZE + 1))
    assert _bad_zstd_transfer(link, tmp_path, bomb) == "decompressed chunk exceeds maximum size"


def test_file_sink_writes_back_while_receiving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sp2p.link import sinks

    monkeypatch.setattr(sinks, "WRITEBACK_STEP", 64 * 1024)
    data = os.urandom(1_000_000)
    sink = sinks.FileSink(tmp_path, Metadata(name="big.bin", size=len(data)))
    for i in range(0, len(data), 100_000):
        sink.write(data[i : i + 100_000])
    assert sink._written_back >= len(data) - 100_000  # the hints really went out
    sink.commit()
    assert open_under(tmp_path) == []
    assert (tmp_path / "big.bin").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]


def test_a_handshake_frame_on_a_broken_link_is_connection_lost(link: tuple[FramedChannel, FramedChannel]) -> None:
    """Ctrl-C on the receiver just after 'Connected via TCP' reset the link while the sender
    wrote its resume handshake: ChannelClosed escaped every handler and the sender said
    'unexpected error: connection lost: Connection reset by peer' (exit 1, 'a bug'). A
    handshake frame that cannot be written is ConnectionLost, as an end of stream is to the
    reader of the answer (exit 6, and a reconnect may heal it)."""
    s_fc, r_fc = link
    assert isinstance(r_fc.channel, TcpChannel)
    r_fc.channel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
    r_fc.close()
    with pytest.raises(ConnectionLost):
        for _ in range(500):  # the first writes may still land in the kernel's buffer
            s_fc.send_frame(MsgType.HEARTBEAT, b"")
            time.sleep(0.01)

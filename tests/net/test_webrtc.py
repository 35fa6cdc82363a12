"""Two real aiortc peers on loopback, signaling through an in-memory relay: data path."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time

import pytest

from sp2p.net.channel import ChannelClosed
from sp2p.net.webrtc_channel import HIGH_WATER, MAX_MESSAGE
from sp2p.net.webrtc_sctp import RECEIVE_WINDOW
from tests.net.webrtc_pair import open_pair, read_exactly

pytestmark = pytest.mark.webrtc


def test_open_exchange_both_ways_and_signal_shapes() -> None:
    with open_pair() as (snd, rcv, relay):
        assert snd.transport == rcv.transport == "WebRTC"
        snd.send(b"hello receiver")
        assert rcv.recv(10) == b"hello receiver"
        rcv.send(b"hello sender")
        assert snd.recv(10) == b"hello sender"
        # client.md §4.2 payloads, exactly
        (offer,) = relay.sent("sender", "offer")
        (answer,) = relay.sent("receiver", "answer")
        assert set(offer) == {"sdp", "type"} and offer["type"] == "offer"
        assert set(answer) == {"sdp", "type"} and answer["type"] == "answer"
        assert "a=max-message-size:262144" in offer["sdp"]
        assert "a=max-message-size:262144" in answer["sdp"]
        for side in ("sender", "receiver"):
            assert relay.wait_sent(side, "connected") == [{}]


def test_messages_of_exactly_256_kib_and_splitting() -> None:
    with open_pair() as (snd, rcv, _):
        for a, b in ((snd, rcv), (rcv, snd)):
            exact = os.urandom(MAX_MESSAGE)
            a.send(exact)
            assert b.recv(10) == exact  # one message, accepted whole

            big = os.urandom(4 * MAX_MESSAGE)  # 1 MiB: must go as four messages
            a.send(big)
            parts = [b.recv(10) for _ in range(4)]
            assert [len(p) for p in parts] == [MAX_MESSAGE] * 4
            assert b"".join(parts) == big

            # every send() starts a new message: a 32-byte MAC never merges with a frame
            a.send(b"M" * 32)
            a.send(b"F" * (MAX_MESSAGE + 1))
            assert b.recv(10) == b"M" * 32
            assert len(b.recv(10)) == MAX_MESSAGE
            assert b.recv(10) == b"F"


def test_20_mib_integrity_with_traffic_both_ways() -> None:
    total = 20 * 1024 * 1024
    rng = random.Random(5)
    payload = rng.randbytes(total)
    back = rng.randbytes(2 * 1024 * 1024)
    with open_pair() as (snd, rcv, _):
        errors: list[BaseException] = []

        def write(channel, data: bytes) -> None:
            try:
                pos = 0
                while pos < len(data):
                    size = rng.choice((1, 32, 4096, MAX_MESSAGE, 524301))
                    channel.send(data[pos : pos + size])
                    pos += size
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(snd, payload)),
            threading.Thread(target=write, args=(rcv, back)),
        ]
        for t in threads:
            t.start()
        got_back = read_exactly(snd, len(back), timeout=60)
        got = read_exactly(rcv, total, timeout=60)
        for t in threads:
            t.join(60)
        assert not errors
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        assert got_back == back


def test_peer_close_delivers_everything_then_eof() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    with open_pair() as (snd, rcv, _):
        snd.send(data)
        snd.close()  # must flush what was sent before tearing down
        assert read_exactly(rcv, len(data)) == data
        assert rcv.recv(10) == b""
        assert rcv.recv(10) == b""  # stays at end of stream
        with pytest.raises(ChannelClosed):
            rcv.send(b"too late")


def test_local_close_semantics() -> None:
    with open_pair() as (snd, rcv, _):
        rcv.close()
        rcv.close()  # idempotent
        with pytest.raises(ChannelClosed):
            rcv.recv(1)
        with pytest.raises(ChannelClosed):
            rcv.send(b"x")
        assert snd.recv(10) == b""  # the peer sees an orderly end


def test_recv_timeout() -> None:
    with open_pair() as (snd, rcv, _):
        with pytest.raises(TimeoutError):
            rcv.recv(0.2)
        snd.send(b"still works")
        assert rcv.recv(10) == b"still works"


def test_slow_reader_holds_back_the_sender_and_close_unblocks_it() -> None:
    """Unread data counts against the receive window: memory stays bounded."""
    block = os.urandom(MAX_MESSAGE)
    with open_pair() as (snd, rcv, _):
        sent = [0]
        outcome: list[BaseException | None] = []

        def writer() -> None:
            try:
                for _ in range(256):  # 64 MiB, far beyond window + buffers
                    snd.send(block)
                    sent[0] += len(block)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        last, still_since, deadline = -1, time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline and time.monotonic() - still_since < 1.5:
            if sent[0] != last:
                last, still_since = sent[0], time.monotonic()
            time.sleep(0.1)
        assert thread.is_alive(), "64 MiB went out although nobody read"
        queued = sum(len(m) for m in list(rcv._inbox))
        assert queued <= RECEIVE_WINDOW + MAX_MESSAGE
        assert sent[0] <= queued + HIGH_WATER + 2 * RECEIVE_WINDOW
        # reading resumes the flow, in order
        got = read_exactly(rcv, 8 * MAX_MESSAGE)
        assert got == block * 8
        snd.close()  # a send() blocked on back-pressure must return
        thread.join(10)
        assert not thread.is_alive()
        assert outcome and isinstance(outcome[0], ChannelClosed)

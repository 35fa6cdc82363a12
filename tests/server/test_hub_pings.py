"""An idle connection's ping and pong under REAL gunicorn's gevent worker, where the hub
sends the ping and reads the pong without waking the connection's greenlet
(server.connection.Peer.due_in_hub / pong_in_hub): what a client sees must not change."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.server.helpers import Client
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def masked(opcode: int, payload: bytes = b"", mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


def text(msg_type: str, payload: dict[str, object] | None = None) -> bytes:
    return masked(OP_TEXT, json.dumps({"type": msg_type, "payload": payload or {}}).encode())


#: every Raw of the running test, closed after it
OPENED: list[Raw] = []


class Raw:
    """A WebSocket client on a bare socket: it answers pings only when told to."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head
        self.buf = b""
        self.pings = 0
        OPENED.append(self)

    def frame(self, timeout: float) -> tuple[int, bytes] | None:
        """The next server frame (pings counted and returned too); None on timeout or EOF."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 2:
                    n = self.buf[1] & 0x7F
                    at = 2
                    if n == 126:
                        if len(self.buf) < 4:
                            n = -1
                        else:
                            n, at = struct.unpack(">H", self.buf[2:4])[0], 4
                    if n >= 0 and len(self.buf) >= at + n:
                        opcode, payload = self.buf[0] & 0x0F, self.buf[at : at + n]
                        self.buf = self.buf[at + n :]
                        if opcode == OP_PING:
                            self.pings += 1
                        return opcode, payload
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except TimeoutError:
            return None

    def message(self, timeout: float = 5.0, *, pong: bytes | None = b"") -> dict[str, object]:
        """The next text message; pings meanwhile answered with `pong` (None: not at all)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.frame(left)
            if got is None:
                break
            opcode, payload = got
            if opcode == OP_TEXT:
                return dict(json.loads(payload))
            if opcode == OP_PING and pong is not None:
                self.sock.sendall(masked(OP_PONG, pong))
        raise AssertionError("no message")

    def idle(self, seconds: float, *, pong: bytes | None = b"", then: bytes = b"") -> None:
        """Read for `seconds`: only pings may come; each answered with `pong`, and `then`
        sent in the same write as the last answer."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got = self.frame(left)
            if got is None:
                return
            assert got[0] == OP_PING, got
            if pong is not None:
                self.sock.sendall(masked(OP_PONG, pong))


@pytest.fixture
def pinging() -> Iterator[ServerProc]:
    server = start_server(*NO_LIMIT_FLAGS, "-ping-interval", "400ms")
    try:
        yield server
    finally:
        for raw in OPENED:
            raw.sock.close()
        OPENED.clear()
        server.stop()


def _hello(server: ServerProc) -> tuple[Raw, str]:
    raw = Raw(server.port)
    raw.sock.sendall(text("hello", {"version": 2}))
    welcome = raw.message()
    assert welcome["type"] == "welcome"
    payload = welcome["payload"]
    assert isinstance(payload, dict)
    return raw, str(payload["sessionId"])


def test_an_idle_sender_answering_pings_stays_and_still_relays(pinging: ServerProc) -> None:
    sender, sid = _hello(pinging)
    sender.idle(2.5)  # empty pongs: read in the hub
    assert sender.pings >= 2  # (every 0.4 s, up to two wheel ticks late)
    sender.idle(1.0, pong=b"echo")  # a pong with a body: the reader's own path
    receiver = Client(pinging.ws_url)
    receiver.send("join", {"version": 2, "sessionId": sid})
    receiver.expect("welcome")
    assert sender.message()["type"] == "peer-joined"
    # a pong and a message in one write: the hub hands the message on
    while (got := sender.frame(2.0)) is not None and got[0] != OP_PING:
        pass
    sender.sock.sendall(masked(OP_PONG) + text("crypto", {"publicKey": "k"}))
    assert receiver.expect("crypto") == {"publicKey": "k"}
    receiver.send("answer", {"sdp": "a", "type": "answer"})
    assert sender.message()["type"] == "answer"


def test_a_waiting_sender_that_stops_answering_pings_is_closed_with_1008(pinging: ServerProc) -> None:
    sender, _ = _hello(pinging)
    sender.idle(1.0)  # answered: still here
    started = time.monotonic()
    assert _close_code(sender, 5.0) == 1008
    # one interval to notice, within two: a pong was due by the next ping
    assert time.monotonic() - started < 2.0


def test_many_idle_senders_all_pinged_and_a_silent_one_dropped_among_them(pinging: ServerProc) -> None:
    opened = [_hello(pinging) for _ in range(40)]
    senders, sids = [raw for raw, _ in opened], [sid for _, sid in opened]
    silent, _ = _hello(pinging)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for raw in senders:
            got = raw.frame(0.01)
            if got is not None:
                assert got[0] == OP_PING
                raw.sock.sendall(masked(OP_PONG))
    assert all(raw.pings >= 2 for raw in senders)
    assert _close_code(silent, 3.0) == 1008
    # the others are still served
    receiver = Client(pinging.ws_url)
    receiver.send("join", {"version": 2, "sessionId": sids[0]})
    receiver.expect("welcome")
    assert senders[0].message()["type"] == "peer-joined"


def _close_code(raw: Raw, within: float) -> int | None:
    """The code of the close frame that comes within `within` seconds (pings unanswered)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        got = raw.frame(left)
        if got is None:
            return None
        if got[0] == OP_CLOSE:
            return int(struct.unpack(">H", got[1][:2])[0])
    return None

"""Guards for what server/connection.py assumes about simple-websocket's internals.

`Peer` swaps the library's socket for a write-serialising, lingering-close proxy, passes
its own reader-thread class and selector, and writes frames with the library's wsproto
connection. pyproject pins simple-websocket below the next minor version; these tests fail
when an upgrade moves any of that, instead of letting the server silently lose its write
timeout, its 1009 close or its activity tracking.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import simple_websocket
import wsproto
from packaging.requirements import Requirement

from server import connection
from server.connection import ActivitySelector, Peer, PeerClosed, ReaderThread
from tests.server.test_gevent_worker import masked_frame

REPO = Path(__file__).resolve().parents[2]


def test_installed_simple_websocket_is_inside_the_pinned_range() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["server"]
    spec = next(Requirement(d) for d in deps if d.startswith("simple-websocket"))
    assert any(s.operator == "<" for s in spec.specifier), "simple-websocket needs an upper bound"
    assert version("simple-websocket") in spec.specifier


@pytest.fixture
def served() -> Iterator[tuple[Peer, socket.socket]]:
    """A simple_websocket.Server over a socketpair (werkzeug-style environ), wrapped in Peer."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    environ = {  # the library rebuilds the upgrade request from these
        "werkzeug.socket": ours,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
    }
    ws = simple_websocket.Server(
        environ,
        ping_interval=30,
        max_message_size=1000,
        thread_class=ReaderThread,
        selector_class=ActivitySelector,
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += theirs.recv(4096)
    assert b" 101 " in head
    peer = Peer(ws, "127.0.0.1", write_timeout=2.0)
    try:
        yield peer, theirs
    finally:
        peer.finish(grace=0.2)
        theirs.close()


def test_the_internals_peer_relies_on_are_there() -> None:
    params = inspect.signature(simple_websocket.Server.__init__).parameters
    assert {"thread_class", "selector_class", "max_message_size", "ping_interval"} <= set(params)
    source = inspect.getsource(simple_websocket.ws.Base)
    # the reader writes through `self.sock` looked up on every call, and wakes `self.event`
    assert "self.sock.send(" in source and "self.sock.close()" in source
    assert "self.event.set()" in source and "self.connected = False" in source


def test_library_writes_go_through_the_guard_and_activity_is_seen(
    served: tuple[Peer, socket.socket],
) -> None:
    peer, theirs = served
    assert isinstance(peer.ws.sock, connection._GuardedSocket)
    assert isinstance(peer.ws.ws, wsproto.WSConnection)
    assert isinstance(peer.ws.thread, ReaderThread)
    before = peer.last_activity
    time.sleep(0.05)
    theirs.sendall(masked_frame(0x9, b"hi"))  # ping: the reader answers with a pong
    assert theirs.recv(16) == b"\x8a\x02hi"
    assert peer.last_activity > before  # ActivitySelector saw the bytes
    theirs.sendall(masked_frame(0x1, b'{"type":"x"}'))
    assert peer.receive(timeout=2) == '{"type":"x"}'
    assert peer.send_text("back")
    assert theirs.recv(16) == b"\x81\x04back"


def test_oversize_wakes_the_handler_and_closes_with_1009(served: tuple[Peer, socket.socket]) -> None:
    peer, theirs = served
    result: list[object] = []

    def wait() -> None:
        try:
            result.append(peer.receive(timeout=10))
        except PeerClosed:
            result.append(PeerClosed)

    waiter = threading.Thread(target=wait)
    waiter.start()
    theirs.sendall(masked_frame(0x1, b"x" * 5000))
    data = b""
    while chunk := theirs.recv(4096):  # the lingering close: close frame, then EOF, no reset
        data += chunk
    waiter.join(3)
    assert result == [PeerClosed]  # ReaderThread woke the handler
    assert int.from_bytes(data[2:4], "big") == 1009

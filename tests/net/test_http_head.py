"""sp2p.net.http_head, the one reader of an HTTP answer's head (the WebSocket upgrade and the
preview GET): over a real socket pair, in whatever pieces the bytes come."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from sp2p.net.http_head import Head, HeadError, parse_head, read_head

_ANSWER = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSEC-WebSocket-Accept:  abc= \r\n"
           b"Connection: Upgrade\r\n\r\n")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    with ours, theirs:
        yield ours, theirs


def _send_in_pieces(sock: socket.socket, data: bytes, size: int, *, may_be_cut: bool = False) -> threading.Thread:
    """Send `data` `size` bytes at a time, then close (each piece its own segment, as read).
    `may_be_cut`: the reader closes early, so a broken pipe ends the sending quietly."""
    def run() -> None:
        try:
            for at in range(0, len(data), size):
                sock.sendall(data[at:at + size])
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            if not may_be_cut:
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("size", [1, 3, 4, 5, 4096])
def test_the_head_is_read_in_any_pieces_and_what_follows_stays(pair: tuple[socket.socket, socket.socket],
                                                              size: int) -> None:
    ours, theirs = pair
    _send_in_pieces(theirs, _ANSWER + b"\x81\x02hi", size).join()
    buf = bytearray()
    head = read_head(buf, lambda: ours.recv(size), 16384)
    assert head == Head(101, {"upgrade": "websocket", "sec-websocket-accept": "abc=", "connection": "Upgrade"})
    while chunk := ours.recv(4096):
        buf += chunk
    assert bytes(buf) == b"\x81\x02hi"


def test_bytes_already_buffered_are_read_first(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _theirs = pair
    buf = bytearray(b"HTTP/1.0 404 Not Found\r\n\r\n{}")
    assert read_head(buf, lambda: ours.recv(4096), 16384) == Head(404, {})
    assert bytes(buf) == b"{}"


def test_the_end_of_the_connection_before_the_blank_line_is_an_error(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    _send_in_pieces(theirs, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", 7).join()
    with pytest.raises(HeadError, match="ended before"):
        read_head(bytearray(), lambda: ours.recv(4096), 16384)


def test_an_endless_head_stops_at_the_limit(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    sender = _send_in_pieces(theirs, b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70000, 4096, may_be_cut=True)
    with pytest.raises(HeadError, match="oversized"):
        read_head(bytearray(), lambda: ours.recv(4096), 16384)
    ours.close()  # the sender, blocked on a full socket, ends with a broken pipe
    sender.join(10)
    assert not sender.is_alive()


def test_a_blank_line_past_the_limit_is_oversized_even_in_one_read() -> None:
    buf = bytearray(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 100 + b"\r\n\r\n")
    with pytest.raises(HeadError, match="oversized"):
        read_head(buf, lambda: b"", 64)


@pytest.mark.parametrize("raw", [b"SSH-2.0-OpenSSH", b"", b"HTTP/1.1", b"HTTP/1.1 abc OK", b"ICY 200 OK",
                                 "HTTP/1.1 \u0662\u0660\u0660 OK".encode(), b"HTTP/1.1 \xd9\xa2 OK"])
def test_what_is_not_a_status_line_is_refused(raw: bytes) -> None:
    with pytest.raises(HeadError, match="not an HTTP answer"):
        parse_head(raw)


def test_header_lines_are_kept_lower_cased_and_stripped_the_last_of_a_name_winning() -> None:
    head = parse_head(b"HTTP/1.1 200\r\nContent-Type:application/json\r\nX-A: 1\r\nx-a:  2 \r\nno colon")
    assert head == Head(200, {"content-type": "application/json", "x-a": "2", "no colon": ""})

"""sp2p.net.preview against a real socket server on loopback: what each answer gives, and
that the request is one HTTP/1.0 GET (no chunked answer to parse)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sp2p.net.preview import fetch_file_info
from sp2p.proto.fileinfo import MAX_FILE_INFO_BLOB

#: the answer to a request: all at once, or in pieces sent as they come
Answer = Callable[[bytes], bytes | Iterator[bytes]]


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[str, list[bytes]]]]:
    """Start a one-connection-at-a-time server answering each request with `answer(request)`;
    returns its base URL and the requests it saw."""
    listeners: list[socket.socket] = []

    def start(answer: Answer) -> tuple[str, list[bytes]]:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        seen: list[bytes] = []

        def loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    seen.append(request)
                    reply = answer(request)
                    with contextlib.suppress(OSError):
                        for piece in [reply] if isinstance(reply, bytes) else reply:
                            conn.sendall(piece)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", seen

    yield start
    for listener in listeners:
        listener.close()


def _ok(body: bytes, *, status: bytes = b"200 OK") -> Answer:
    return lambda _request: b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n\r\n" + body


def _envelope(blob: bytes) -> bytes:
    return json.dumps({"data": base64.b64encode(blob).decode()}).encode()


def test_a_200_gives_the_blob_and_the_request_is_http_1_0(serve: Callable[[Answer], tuple[str, list[bytes]]]) -> None:
    url, seen = serve(_ok(_envelope(b"\x01\x02blob")))
    assert fetch_file_info(url, "abc/def") == b"\x01\x02blob"
    request_line, *headers = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert request_line == b"GET /api/file-info/abc%2Fdef HTTP/1.0"
    assert f"Host: {url.removeprefix('http://')}".encode() in headers


@pytest.mark.parametrize("answer", [
    _ok(b"", status=b"404 Not Found"),
    _ok(_envelope(b"x"), status=b"500 Internal Server Error"),
    _ok(b"not json"),
    _ok(b'{"data": "!!"}'),
    _ok(b'{"nodata": ""}'),
    _ok(_envelope(b"x" * (MAX_FILE_INFO_BLOB * 2))),
    lambda _request: b"SSH-2.0-OpenSSH\r\n\r\n",
    lambda _request: b"",
], ids=["404", "500", "junk-json", "bad-base64", "no-data", "oversize", "not-http", "closed"])
def test_anything_but_a_good_200_is_no_preview(serve: Callable[[Answer], tuple[str, list[bytes]]],
                                              answer: Answer) -> None:
    url, seen = serve(answer)
    assert fetch_file_info(url, "abc") is None
    assert len(seen) == 1


def test_a_trickling_server_is_no_preview_within_the_timeout(
    serve: Callable[[Answer], tuple[str, list[bytes]]]
) -> None:
    """A byte every 0.1 s must not stretch the deadline: it is for the whole answer."""
    def trickle(_request: bytes) -> Iterator[bytes]:
        for _ in range(30):
            yield b" "
            time.sleep(0.1)

    url, _ = serve(trickle)
    started = time.monotonic()
    assert fetch_file_info(url, "abc", timeout=0.5) is None
    assert time.monotonic() - started < 2.5


def test_nothing_listening_and_other_schemes_are_no_preview() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    assert fetch_file_info(f"http://127.0.0.1:{port}", "abc") is None
    assert fetch_file_info("ftp://127.0.0.1", "abc") is None
    assert fetch_file_info("not a url", "abc") is None

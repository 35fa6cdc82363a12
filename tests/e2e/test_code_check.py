"""A short code is tried on the sender's preview before the join (sp2p/flow/code_check.py),
against a server that serves the preview it chooses: an http.server on loopback standing in
for a hostile or broken signaling server (it has no /ws, so a receiver that goes on to join
fails there, exit 3). A blob that does not open is refused, with a message that does not
blame the code alone; a blob no sender writes is no verdict on the code at all."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sp2p.proto.codes import parse_code
from sp2p.proto.fileinfo import encrypt_file_info
from sp2p.status import ExitStatus
from tests.e2e.harness import cli_env, finish, spawn

pytestmark = pytest.mark.e2e

#: a well-formed code whose secret part is 21 characters, as 1 real code in 8 is
SHORT_CODE = "k7m2x9ab-6mBhJfNj3WXtM6Zyq83xd"
SEED = parse_code(SHORT_CODE).seed


class PreviewServer(http.server.ThreadingHTTPServer):
    body: bytes = b""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self.path.startswith("/api/file-info/"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def preview_server() -> Iterator[PreviewServer]:
    server = PreviewServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _body(blob: bytes) -> bytes:
    return json.dumps({"data": base64.b64encode(blob).decode()}).encode()


def _receive(server: PreviewServer, blob: bytes, tmp_path: Path) -> tuple[int, str]:
    server.body = _body(blob)
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    env = cli_env(f"http://127.0.0.1:{server.server_address[1]}", home)
    r = finish(spawn(["receive", "-output", str(tmp_path), SHORT_CODE], env), timeout=60)
    assert "Traceback" not in r.err, r.err
    return r.rc, r.err


def test_a_preview_that_does_not_open_is_refused_without_blaming_the_code_alone(
    preview_server: PreviewServer, tmp_path: Path
) -> None:
    """C16: well-formed but sealed with another seed, a cut-off code or a server that lies.
    The user is told both, before any join."""
    rc, err = _receive(preview_server, encrypt_file_info(os.urandom(16), b'{"name":"x"}'), tmp_path)
    assert rc == ExitStatus.USAGE, err
    assert "sp2p: error: this code does not open the sender's preview: its secret part (after '-') " \
           "looks cut off or mistyped" in err.splitlines()
    assert ("sp2p: hint: copy the whole code again (the sender is still waiting); if it is exactly what "
            "the sender shows, the server is serving a wrong preview") in err.splitlines()


Blob = Callable[[], bytes]


@pytest.mark.parametrize("blob", [
    lambda: b"",  # an empty blob, as a server might answer for "none"
    lambda: os.urandom(28),  # a nonce and a tag around nothing: no sender's preview is empty
    lambda: os.urandom(9000),  # past the cap
    lambda: encrypt_file_info(SEED, b'{"name":"x"}'),  # the real thing: opens
], ids=["empty", "no-ciphertext", "too-large", "opens"])
def test_a_blob_no_sender_writes_or_one_that_opens_lets_the_join_go_ahead(
    preview_server: PreviewServer, tmp_path: Path, blob: Blob
) -> None:
    """C16: an empty, hollow or oversized blob is the server's doing, not the code's."""
    rc, err = _receive(preview_server, blob(), tmp_path)
    assert rc == ExitStatus.SIGNALING, err  # it went on to join, which this server cannot take
    assert "preview" not in err and "cut off" not in err, err

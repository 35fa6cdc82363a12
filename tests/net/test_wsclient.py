"""sp2p.net.wsclient against a real WebSocket server (the `websockets` library, threaded), plain
and TLS: fragments, pings, oversize messages, the closing handshake, refused upgrades."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

from sp2p.net.wsclient import OP_CLOSE, OP_TEXT, WsError, WsHandshakeStatus, open_websocket

Handler = Callable[[ServerConnection], None]


@pytest.fixture
def ws_server() -> Iterator[Callable[..., str]]:
    """start(handler, tls=None) -> ws(s)://127.0.0.1:PORT/ws, served on a thread."""
    servers = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> str:
        def refuse_other_paths(_conn: ServerConnection, request: Request) -> Response | None:
            if request.path == "/ws":
                return None
            return Response(404, "Not Found", Headers(), b"no")

        server = serve(handler, "127.0.0.1", 0, ssl=tls, process_request=refuse_other_paths,
                       ping_interval=None)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        port = server.socket.getsockname()[1]
        return f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/ws"

    yield start
    for server in servers:
        server.shutdown()


def test_messages_fragments_pings_and_the_closing_handshake(ws_server: Callable[..., str]) -> None:
    closed = threading.Event()

    def handler(conn: ServerConnection) -> None:
        conn.send("hello")
        conn.send(["frag", "mented"])  # one message in three frames
        conn.ping(b"are you there")
        conn.send("x" * 300)  # 16-bit length
        assert conn.recv(timeout=10) == "from the client " + "y" * 70000  # 64-bit length, masked
        conn.send("bye")
        conn.close(code=1000)
        closed.set()

    ws = open_websocket(ws_server(handler), timeout=5, max_message=65536)
    try:
        assert ws.recv() == (OP_TEXT, b"hello")
        assert ws.recv() == (OP_TEXT, b"fragmented")
        assert ws.recv() == (OP_TEXT, b"x" * 300)
        ws.send_text("from the client " + "y" * 70000)
        assert ws.recv() == (OP_TEXT, b"bye")
        opcode, body = ws.recv()
        assert opcode == OP_CLOSE
        assert body[:2] == (1000).to_bytes(2, "big")
        ws.send_text("after the close")  # goes nowhere, as into a socket whose peer left
    finally:
        ws.release()
    assert closed.wait(10)  # the server saw our answer to its close


def test_oversize_messages_are_skipped_not_buffered(ws_server: Callable[..., str]) -> None:
    def handler(conn: ServerConnection) -> None:
        conn.send("z" * 5000)
        conn.send(["a" * 600, "b" * 600])  # fragmented and over the limit as a whole
        conn.send("fits")
        conn.recv(timeout=10)

    ws = open_websocket(ws_server(handler), timeout=5, max_message=1000)
    try:
        assert ws.recv() == (OP_TEXT, b"fits")
    finally:
        ws.close()
        ws.release()


def test_a_refused_upgrade_reports_the_http_status(ws_server: Callable[..., str]) -> None:
    url = ws_server(lambda conn: None).replace("/ws", "/elsewhere")
    with pytest.raises(WsHandshakeStatus) as info:
        open_websocket(url, timeout=5, max_message=1000)
    assert info.value.status == 404


def test_a_server_that_is_not_http_is_an_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        with pytest.raises(WsError, match="not an HTTP answer"):
            open_websocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", timeout=5, max_message=1000)


def test_masked_frames_from_the_server_are_refused() -> None:
    """RFC 6455 §5.1: a client closes on a masked frame from the server."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                request = conn.recv(4096).decode()
                key = next(line.split(": ")[1] for line in request.split("\r\n")
                           if line.lower().startswith("sec-websocket-key"))
                accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                       .encode()).digest()).decode()
                conn.sendall(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
                             + bytes([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2]))
                conn.recv(4096)

        threading.Thread(target=answer, daemon=True).start()
        ws = open_websocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws", timeout=5, max_message=1000)
        try:
            with pytest.raises(WsError, match="masking"):
                ws.recv()
        finally:
            ws.release()


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)
    return context, cert_pem


def test_wss_verifies_the_certificate(ws_server: Callable[..., str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert_pem = _self_signed(tmp_path)

    def handler(conn: ServerConnection) -> None:
        conn.send("over tls")
        conn.recv(timeout=10)

    url = ws_server(handler, context)
    monkeypatch.delenv("WEBSOCKET_CLIENT_CA_BUNDLE", raising=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        open_websocket(url, timeout=5, max_message=1000)
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(cert_pem))  # as websocket-client honoured it
    ws = open_websocket(url, timeout=5, max_message=1000)
    try:
        assert ws.recv() == (OP_TEXT, b"over tls")
    finally:
        ws.close()
        ws.release()

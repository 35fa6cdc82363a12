"""Helpers for server tests: an in-thread server and a small WebSocket client."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import websocket
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from server import create_app
from server.state import ServerState
from tests.support.polling import wait_until as wait_until  # re-exported: the server tests import it here
from tests.support.ports import LoopbackUrls


@dataclass
class LiveServer(LoopbackUrls):
    app: Flask
    server: BaseWSGIServer
    port: int

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.extensions["sp2p"]
        return state


_servers = itertools.count()
#: store settings of the current test's backend (set by the `backend` fixture in conftest)
BACKEND_CONFIG: dict[str, Any] = {}


@contextlib.contextmanager
def live_server(config: Mapping[str, Any] | None = None) -> Iterator[LiveServer]:
    """create_app(config) served by werkzeug on an ephemeral loopback port, in a thread,
    on the current test's backend (in memory, or a real Redis)."""
    backend = dict(BACKEND_CONFIG)
    if "redis_prefix" in backend:  # every server starts empty, as a fresh in-memory one does
        backend["redis_prefix"] += f"-{next(_servers)}"
    app = create_app({**backend, **dict(config or {})})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )
    thread.start()
    try:
        yield LiveServer(app, server, server.server_port)
    finally:
        app.extensions["sp2p"].shutdown()
        server.shutdown()
        server.server_close()
        thread.join(5)


class Client:
    """A blocking WebSocket client speaking the signalling envelope. Whatever a test leaves
    open is closed after it (`close_leftover_clients`), never left to the GC."""

    opened: ClassVar[list[Client]] = []

    def __init__(
        self,
        url: str,
        *,
        source_ip: str | None = None,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # like the Go CLI: no Origin header unless a test asks for one
        options: dict[str, Any] = {"timeout": timeout, "suppress_origin": True}
        headers = dict(headers or {})
        if "Origin" in headers:
            options["origin"] = headers.pop("Origin")
            options["suppress_origin"] = False
        if headers:
            options["header"] = [f"{k}: {v}" for k, v in headers.items()]
        if source_ip is not None:
            host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=timeout, source_address=(source_ip, 0))
            options["socket"] = sock
        self.ws = websocket.create_connection(url, **options)
        Client.opened.append(self)

    def send(self, msg_type: str, payload: Any = None, **extra: Any) -> None:
        body: dict[str, Any] = {"type": msg_type, "payload": {} if payload is None else payload}
        body.update(extra)
        self.ws.send(json.dumps(body))

    def send_raw(self, text: str | bytes, binary: bool = False) -> None:
        if binary:
            self.ws.send_binary(text if isinstance(text, bytes) else text.encode())
        else:
            self.ws.send(text)

    def recv_text(self, timeout: float = 5.0) -> str:
        self.ws.settimeout(timeout)
        data = self.ws.recv()
        if not data:
            raise ConnectionError("closed")
        return data if isinstance(data, str) else data.decode()

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.recv_text(timeout))
        return value

    def expect(self, msg_type: str, timeout: float = 5.0) -> dict[str, Any]:
        msg = self.recv(timeout)
        assert msg["type"] == msg_type, msg
        payload: dict[str, Any] = msg["payload"]
        return payload

    def nothing_for(self, seconds: float) -> bool:
        """True if no message arrived within `seconds` (pings are answered meanwhile)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.ws.settimeout(remaining)
            try:
                opcode, _frame = self.ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                return True
            if opcode not in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                return False
        return True

    def closed_within(self, timeout: float = 5.0) -> bool:
        """Read until the server closes; True if it did within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return True
            if not data:
                return True
        return False

    @property
    def close_status(self) -> int | None:
        status = getattr(self.ws, "close_status", None)  # not all versions expose it
        return status if isinstance(status, int) else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=0.5)
        # websocket-client's close() returns early, socket left open, once the server's close
        # frame was read (recv() answers it and marks the connection closed): shut it here
        self.ws.shutdown()

    @classmethod
    def close_leftovers(cls) -> None:
        while cls.opened:
            cls.opened.pop().close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hello(
    url: str, *, version: int = 2, client_type: str = "cli", **kwargs: Any
) -> tuple[Client, str, dict[str, Any]]:
    """A sender with a session: (client, session id, welcome payload)."""
    client = Client(url, **kwargs)
    client.send(
        "hello", {"version": version, "clientType": client_type, "clientOS": "linux", "clientArch": "amd64"}
    )
    welcome = client.expect("welcome")
    return client, welcome["sessionId"], welcome


def pair(url: str, **kwargs: Any) -> tuple[Client, Client, str]:
    """A sender and a joined receiver: (sender, receiver, session id)."""
    sender, sid, _ = hello(url, **kwargs)
    receiver = Client(url, **kwargs)
    receiver.send("join", {"version": 2, "sessionId": sid, "clientType": "cli"})
    receiver.expect("welcome")
    sender.expect("peer-joined")
    return sender, receiver, sid



def close_code(client: Client, *, answer: bool, timeout: float = 5.0) -> int:
    """Read frames up to the server's close frame; its status code. `answer`: reply with a
    close frame and hang up (as browsers and the CLI do); else stay silent, socket open."""
    client.ws.settimeout(timeout)
    while True:
        frame = client.ws.recv_frame()  # the frame level: no automatic replies
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    if answer:
        client.ws.send_close()
        client.ws.shutdown()
    return int.from_bytes(frame.data[:2], "big")

def http_get(
    url: str, headers: Mapping[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) without following redirects and without raising."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()

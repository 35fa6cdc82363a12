"""`/ws` answered below Flask: a WSGI wrapper that takes the upgrade itself.

Every other path goes to the Flask app. For `/ws` the wrapper checks the handshake
(server.upgrade), writes the 101 on the raw socket the WSGI server exposes (gunicorn's
`gunicorn.socket`, werkzeug's `werkzeug.socket`) and runs the whole connection in the
request's own greenlet (or thread): no Flask dispatch, no request context, no second
greenlet. Per connection that saves most of the CPU the upgrade cost and the memory a
second stack and a selector held.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import Any

from server import ws
from server.connection import CLOSE_GOING_AWAY, Peer
from server.handoff_wire import Offer
from server.headers import base_url
from server.state import ServerState
from server.upgrade import (
    Refused,
    UpgradeRequest,
    decide,
    peek_ws_head,
    refusal_response,
    request_from_head,
)
from sp2p.proto.signal import MAX_SIGNAL_MESSAGE

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")
#: how long a new connection may take to send its whole request head (gunicorn's keepalive)
HEAD_TIMEOUT = 5.0
NO_SOCKET = Refused(500, "Internal Server Error", "this WSGI server cannot hand over its socket")


class WebSocketEndpoint:
    """The WSGI application the server runs: `/ws` here, everything else in `app`."""

    def __init__(self, app: WSGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/ws":
            return self.app(environ, start_response)
        request = UpgradeRequest.from_environ(environ, trust_proxy=self.state.config.trust_proxy)
        sock: socket.socket | None = next((environ[k] for k in _SOCKET_KEYS if k in environ), None)
        refused = self._serve(request, sock)
        if refused is not None:
            status, headers, body = refused
            start_response(status, headers)
            return [body]
        return self._handled(environ, start_response)

    def _serve(
        self, request: UpgradeRequest, sock: socket.socket | None
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """Refuse (the response to send), or run the whole connection on `sock` (None)."""
        state = self.state
        config = state.config
        decision = decide(config, request, state.ws_limiter.hit)
        if isinstance(decision, Refused) or sock is None:
            return refusal_response(config, request, decision if isinstance(decision, Refused) else NO_SOCKET)
        peer = self._peer(sock, request.ip)
        if not peer.send_bytes(decision.response):  # under the write timeout Peer set
            return None
        url = base_url(
            config,
            host=request.headers.get("host", ""),
            scheme=request.scheme,
            forwarded_proto=request.headers.get("x-forwarded-proto", ""),
        )
        try:
            ws.handle(state, peer, url)
        finally:
            peer.finish()
        return None

    def _peer(self, sock: socket.socket, ip: str) -> Peer:
        config = self.state.config
        return Peer(
            sock,
            ip,
            write_timeout=config.write_timeout,
            ping_interval=config.ping_interval,
            max_message=MAX_SIGNAL_MESSAGE,
        )

    def adopt(self, sock: socket.socket, offer: Offer) -> None:
        """Serve a connection handed over (server.handoff: another worker's, or one of ours
        taken back) from its first message on, as if it had arrived here; its socket is
        closed afterwards."""
        peer = self._peer(sock, offer.ip)
        peer.resume(offer.reader)
        try:
            if self.state.stopping:  # came in while this worker stops: as its own would be
                peer.close(CLOSE_GOING_AWAY, "server shutting down")
            else:
                ws.handle(self.state, peer, offer.base_url, movable=False, joined=offer.joined)
        finally:
            try:
                peer.finish()
            finally:
                sock.close()

    def serve_raw(self, sock: socket.socket, addr: Any) -> bool:
        """Serve a fresh connection here if its request is `GET /ws` (the gevent worker
        asks before its HTTP parser runs: no gunicorn request, environ or response object
        for a WebSocket). False: not ours, nothing was read from the socket."""
        head = peek_ws_head(sock, HEAD_TIMEOUT)
        if head is None:
            return False
        request = request_from_head(head, addr, trust_proxy=self.state.config.trust_proxy)
        if request is None:
            return False
        _consume(sock, len(head))
        refused = self._serve(request, sock)
        if refused is not None:  # served; the caller closes the socket
            status, headers, body = refused
            lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
            with contextlib.suppress(OSError):
                sock.sendall("\r\n".join(lines).encode("latin-1") + body)
        return True

    @staticmethod
    def _handled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Tell the WSGI server the connection is ours and over: gunicorn stops on
        StopIteration and closes the socket; werkzeug's attempt to write a response on the
        shut-down socket ends as a dropped connection."""
        if "gunicorn.socket" in environ:
            raise StopIteration
        start_response("101 Switching Protocols", [])
        return []


def _consume(sock: socket.socket, n: int) -> None:
    """Read exactly the `n` bytes a peek already saw."""
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            return
        n -= len(chunk)

"""Blocking WebSocket signaling client (sp2p.net.wsclient) with a lossless mailbox.

A reader thread starts the moment the socket opens and buffers every message, so
nothing the peer sends early is dropped (client.md W12/W13). Consumers take
messages by type with `wait_for`; messages of other types stay queued for
whoever asks for them later.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Collection

from sp2p.errors import ServerUnreachable, SignalingError
from sp2p.log import get_logger
from sp2p.net.wsclient import OP_CLOSE, WsError, WsHandshakeStatus, open_websocket
from sp2p.proto.signal import MAX_SIGNAL_MESSAGE, Envelope, SignalFormatError, SignalType

log = get_logger(__name__)

#: how long a connect may take before we call the server unreachable
CONNECT_TIMEOUT = 10.0
#: how long close() waits for the server to answer the closing handshake
CLOSE_TIMEOUT = 1.0
#: unread messages kept: a real session queues a few dozen; a flooding server gets no more memory
MAX_INBOX = 1024
_KNOWN_TYPES = frozenset(SignalType)
#: HTTP status of a refused upgrade past the server's per-address rate limit (not `http`'s enum:
#: an import the CLI's start does not need)
TOO_MANY_REQUESTS = 429


class SignalClosed(SignalingError):
    """The signaling connection closed."""


class SignalClient:
    def __init__(self, ws_url: str, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.url = ws_url
        self._cond = threading.Condition()
        self._inbox: deque[Envelope] = deque()
        self._dropped: set[str] = set()
        self._closed = False
        self._close_reason = ""
        self._send_lock = threading.Lock()
        self._interrupted = False
        self._ws_open = True
        try:
            self._ws = open_websocket(ws_url, timeout=connect_timeout, max_message=MAX_SIGNAL_MESSAGE)
        except WsHandshakeStatus as exc:
            if exc.status == TOO_MANY_REQUESTS:
                # the Go server's and ours' per-address rate limit (30 upgrades a minute)
                raise SignalingError(
                    f"the signaling server at {ws_url} refused: too many connections from this address "
                    f"(HTTP {exc.status})",
                    hint="wait a minute, then try again",
                ) from exc
            # a web server answered, but not with a WebSocket: usually a wrong path or port
            raise ServerUnreachable(
                f"{ws_url} is not an sp2p signaling endpoint (HTTP {exc.status})", url=ws_url,
                hint="check the -server address: http(s)://host[:port] of an sp2p server",
            ) from exc
        except (OSError, WsError) as exc:
            reason = _reason(exc)
            if isinstance(exc, ConnectionResetError) and ws_url.startswith("ws://"):
                reason += " (an https:// server?)"  # a TLS server hangs up on plain HTTP
            raise ServerUnreachable(
                f"cannot reach the signaling server at {ws_url}: {reason}", url=ws_url,
                hint=_reach_hint(ws_url, exc),
            ) from exc
        self._reader = threading.Thread(target=self._read_loop, name="sp2p-signal-reader", daemon=True)
        self._reader.start()

    # -- receiving -------------------------------------------------------------------------
    def _drop(self, why: str) -> None:
        """One verbose line per kind of drop (a flood must not flood the log)."""
        if why not in self._dropped:
            self._dropped.add(why)
            log.debug("signal: ignoring %s from the server (further ones silently)", why)

    def _read_loop(self) -> None:
        reason = "the signaling server closed the connection"
        try:
            while True:
                opcode, data = self._ws.recv()  # skips messages over MAX_SIGNAL_MESSAGE
                if opcode == OP_CLOSE:
                    break
                try:
                    env = Envelope.from_json(data)
                except SignalFormatError:
                    continue  # unparseable messages are ignored, as every peer does
                if env.type not in _KNOWN_TYPES:
                    self._drop("messages of unknown types")  # nobody would ever take them
                    continue
                with self._cond:
                    if len(self._inbox) >= MAX_INBOX:
                        self._drop(f"messages beyond {MAX_INBOX} unread ones")
                        continue
                    log.debug("signal <- %s", env.type)
                    self._inbox.append(env)
                    self._cond.notify_all()
        except (OSError, WsError) as exc:
            if not self._closed:
                reason = f"signaling connection lost: {_reason(exc)}"
        with self._cond:
            if not self._closed:
                self._close_reason = reason
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, types: Collection[str], timeout: float | None = None) -> Envelope:
        """Remove and return the oldest queued message whose type is in `types`.

        Raises:
            TimeoutError: nothing matching arrived in time, or `interrupt()` was called.
            SignalClosed: the connection closed and nothing matching is queued.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                for i, env in enumerate(self._inbox):
                    if env.type in types:
                        del self._inbox[i]
                        return env
                if self._closed:
                    raise SignalClosed(self._close_reason or "signaling connection closed")
                if self._interrupted:
                    self._interrupted = False
                    raise TimeoutError
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)

    def discard(self, types: Collection[str]) -> int:
        """Drop every queued message of `types` (stale ones from an earlier attempt)."""
        with self._cond:
            kept = [env for env in self._inbox if env.type not in types]
            dropped = len(self._inbox) - len(kept)
            self._inbox = deque(kept)
        return dropped

    def poll(self, types: Collection[str]) -> Envelope | None:
        try:
            return self.wait_for(types, timeout=0)
        except (TimeoutError, SignalClosed):
            return None

    def interrupt(self) -> None:
        """End the current (or next) `wait_for` early with TimeoutError: news from elsewhere."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- sending ---------------------------------------------------------------------------
    def send(self, env: Envelope) -> None:
        text = env.to_json()
        log.debug("signal -> %s", env.type)
        try:
            with self._send_lock:
                self._ws.send_text(text)
        except (OSError, WsError) as exc:
            raise SignalClosed(f"signaling connection lost: {_reason(exc)}") from exc

    def send_type(self, msg_type: SignalType | str, payload: dict[str, object] | None = None) -> None:
        self.send(Envelope(str(msg_type), dict(payload or {})))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._close_reason = self._close_reason or "closed"
            self._cond.notify_all()
            # the socket is ours to close even when the server closed first (the reader then
            # only marked us closed): else it leaks until the GC finds it
            ws_open, self._ws_open = self._ws_open, False
        if ws_open:
            self._ws.close()
            # the reader ends when the server answers the close (one round trip)
            if threading.current_thread() is not self._reader:
                self._reader.join(CLOSE_TIMEOUT)
            self._ws.release()


def _reach_hint(ws_url: str, exc: BaseException) -> str:
    """Refused on this machine (the default server is localhost:8080): most likely no server
    was started, which a newcomer meets first."""
    from urllib.parse import urlsplit  # loaded already: config parsed the URL

    here = urlsplit(ws_url).hostname in ("localhost", "127.0.0.1", "::1")
    if isinstance(exc, ConnectionRefusedError) and here:
        return "no server listens there: start one with sp2p-server, or name another (-server, SP2P_SERVER)"
    return "check the -server address and your connection"


def _reason(exc: BaseException) -> str:
    """The cause in a few words: the system's without its "[Errno N]", TLS failures plainly."""
    ssl = sys.modules.get("ssl")  # loaded for wss:// only; a ws:// failure cannot be a TLS one
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({exc.verify_message})"
    if ssl is not None and isinstance(exc, ssl.SSLError):
        if exc.reason == "WRONG_VERSION_NUMBER":  # a plain HTTP server answered the handshake
            return "it does not speak TLS on that port (an http:// server?)"
        return f"the TLS handshake failed ({exc.reason or exc})"
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]

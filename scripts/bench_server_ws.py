"""A lean asyncio WebSocket client for the server benchmark: `websockets`' sans-I/O protocol
driven by a bare asyncio.Protocol.

Why not `websockets.asyncio.client.connect`: it costs ~0.65 ms of client CPU per connection
and ~40 us per message here, so on this 2-core machine the load generator, not the server,
set the accept rate (~1,200/s) and most of an exchange's latency. The sans-I/O
`ClientProtocol` keeps the library's handshake, framing, masking, ping answers and close
handling, without a task, lock and queue per connection.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import WebSocketURI, parse_uri

#: largest message accepted (the server's own cap is 64 KiB)
MAX_MESSAGE = 1 << 20


@functools.lru_cache(maxsize=16)
def _uri(url: str) -> WebSocketURI:
    return parse_uri(url)


class WsClient(asyncio.Protocol):
    """One client WebSocket: `await opened`, `send(text)`, `await recv()`, `close()`."""

    def __init__(self, uri: WebSocketURI, loop: asyncio.AbstractEventLoop) -> None:
        self._ws = ClientProtocol(uri, max_size=MAX_MESSAGE)
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._messages: deque[str] = deque()
        self._partial = b""  #: a fragmented message so far
        self._waiter: asyncio.Future[None] | None = None
        self.lost = False  #: the TCP connection ended

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._ws.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        self._wake()

    # internals

    def _process(self) -> None:
        for event in self._ws.events_received():
            if isinstance(event, Response):
                if self._ws.handshake_exc is not None:
                    self.opened.set_exception(self._ws.handshake_exc)
                else:
                    self.opened.set_result(None)
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self._partial += event.data
                if event.fin:
                    self._messages.append(self._partial.decode())
                    self._partial = b""
                    self._wake()
        self._flush()

    def _flush(self) -> None:
        if self._transport is None:
            return
        chunks = self._ws.data_to_send()
        if data := b"".join(chunks):
            self._transport.write(data)
        if b"" in chunks:  # the protocol wants the TCP connection half-closed
            self._transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # the API

    def send(self, text: str) -> None:
        self._ws.send_text(text.encode())
        self._flush()

    async def recv(self) -> str:
        while not self._messages:
            if self.lost or self._ws.close_rcvd is not None:
                raise ConnectionClosed(self._ws.close_rcvd, self._ws.close_sent)
            self._waiter = self._loop.create_future()
            await self._waiter
        return self._messages.popleft()

    def close(self) -> None:
        """A close frame, then FIN once it is written (a client's clean goodbye)."""
        if self._transport is not None and not self.lost:
            self._ws.send_close(1000)
            self._flush()
            self._transport.close()

    def abort(self) -> None:
        """Drop the TCP connection now (FIN, no close handshake)."""
        if self._transport is not None:
            self._transport.abort()

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport


async def dial(url: str, src: str, timeout: float) -> WsClient:
    """Connect from source address `src` and complete the opening handshake."""
    uri = _uri(url)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, client = await loop.create_connection(
            lambda: WsClient(uri, loop), uri.host, uri.port, local_addr=(src, 0)
        )
        try:
            await client.opened
        except BaseException:
            client.abort()
            raise
    return client

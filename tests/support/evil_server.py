"""A hostile signaling server for tests (security-cases C12, T19): a WebSocket proxy in front of
the real sp2p-server that rewrites, drops or injects messages on their way to the clients.

    with EvilServer(upstream_ws_url, rewrite) as evil:
        env["SP2P_SERVER"] = evil.http_url

`rewrite(envelope_dict, role)` sees every message the real server sends to a client ("sender"
after its hello, "receiver" after its join) and returns the list of messages to deliver instead
(empty: drop it), or a coroutine giving that list (it runs on the proxy's event loop, so it may
open sockets or peer connections there: tests/support/evil_mitm.py). With `netns`, the proxy's
thread and everything it opens live in that network namespace (a netlab host).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

T = TypeVar("T")
Messages = list[dict[str, Any]]
Rewrite = Callable[[dict[str, Any], str], Messages | Awaitable[Messages]]


class EvilServer:
    def __init__(self, upstream: str, rewrite: Rewrite, *, host: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        self.upstream = upstream
        self.rewrite = rewrite
        self.host = host
        self.netns = netns
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="evil-server", daemon=True)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> EvilServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the evil server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set_result, None)
        self._thread.join(10)
        self._loop.close()

    def call(self, coro: Awaitable[T], timeout: float = 20) -> T:
        """Run `coro` on the proxy's event loop (where a rewrite's sockets and peers live)."""
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def _run(self) -> None:
        if self.netns is not None:
            from tests.netlab.netns import setns_current_thread

            setns_current_thread(self.netns)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._client, self.host, 0, max_size=None) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    async def _client(self, client: ServerConnection) -> None:
        async with connect(self.upstream, max_size=None) as up:
            role = {"hello": "sender", "join": "receiver"}

            async def to_server() -> None:
                async for msg in client:
                    kind = json.loads(msg).get("type")
                    role.setdefault("", role.get(kind, ""))
                    await up.send(msg)

            async def to_client() -> None:
                async for msg in up:
                    outs = self.rewrite(json.loads(msg), role.get("", ""))
                    for out in await outs if inspect.isawaitable(outs) else outs:
                        await client.send(json.dumps(out))

            tasks = [asyncio.create_task(to_server()), asyncio.create_task(to_client())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except websockets.ConnectionClosed:
                pass
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

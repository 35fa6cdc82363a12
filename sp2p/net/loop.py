"""One daemon thread running one asyncio loop: the only place aiortc code runs.

The rest of sp2p is threaded and blocking. Blocking callers reach the loop with
`call()` (run a coroutine there and wait for its result) or `call_soon()` (fire and
forget). aiortc objects must only ever be touched from the loop thread (aiortc #903).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long stop() lets pending tasks finish their cancellation
_SHUTDOWN_GRACE = 2.0


class LoopClosed(RuntimeError):
    """The loop thread was stopped; nothing more can be scheduled on it."""


class LoopThread:
    """A daemon thread running `loop.run_forever()` until `stop()`."""

    def __init__(self, name: str = "sp2p-asyncio") -> None:
        self._loop = asyncio.new_event_loop()
        self._stopping = False
        self._lock = threading.Lock()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def running(self) -> bool:
        return not self._stopping and self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and return its result, waiting at most `timeout` seconds.

        Raises TimeoutError (the coroutine is cancelled), LoopClosed, or whatever the
        coroutine raised.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("LoopThread.call() from the loop thread would deadlock")
        with self._lock:
            if self._stopping:
                coro.close()
                raise LoopClosed("event loop thread is stopped")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"operation did not finish within {timeout} s") from None
        except concurrent.futures.CancelledError:
            raise LoopClosed("operation cancelled: event loop stopped") from None

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Schedule `fn(*args)` on the loop; silently dropped once the loop is stopped."""
        with self._lock:
            if self._stopping:
                return
            self._loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel pending tasks, stop the loop and join the thread. Idempotent."""
        with self._lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
                self._loop.call_soon_threadsafe(self._loop.stop)
        if not already and not self.in_loop_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("event loop thread did not stop within %.1f s", timeout)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        try:
            self._loop.run_forever()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        loop = self._loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(gathered, _SHUTDOWN_GRACE))
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

"""LoopThread: the one asyncio thread aiortc lives on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from sp2p.net.loop import LoopClosed, LoopThread


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread(name="test-loop")
    yield lt
    lt.stop()


def test_call_runs_on_the_loop_thread_and_returns(loop_thread: LoopThread) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert loop_thread.call(where(), timeout=5) == "test-loop"


def test_call_propagates_exceptions(loop_thread: LoopThread) -> None:
    async def boom() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        loop_thread.call(boom(), timeout=5)


def test_call_timeout_cancels_the_coroutine(loop_thread: LoopThread) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        loop_thread.call(slow(), timeout=0.2)
    assert cancelled.wait(5)


def test_call_soon_runs_callbacks_in_order(loop_thread: LoopThread) -> None:
    seen: list[int] = []
    done = threading.Event()
    for i in range(5):
        loop_thread.call_soon(seen.append, i)
    loop_thread.call_soon(done.set)
    assert done.wait(5)
    assert seen == [0, 1, 2, 3, 4]


def test_call_from_the_loop_thread_is_refused(loop_thread: LoopThread) -> None:
    async def inner() -> str:
        return "x"

    async def outer() -> str:
        try:
            return loop_thread.call(inner(), timeout=1)
        except RuntimeError as exc:
            return f"refused: {exc}"

    assert loop_thread.call(outer(), timeout=5).startswith("refused")


def test_stop_cancels_pending_tasks_and_is_idempotent() -> None:
    lt = LoopThread()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lt.call_soon(lambda: asyncio.ensure_future(forever()))
    probe = threading.Event()
    lt.call_soon(probe.set)
    assert probe.wait(5)
    lt.stop()
    assert cancelled.is_set()
    assert not lt.running
    assert lt.loop.is_closed()
    lt.stop()  # idempotent
    with pytest.raises(LoopClosed):
        lt.call(asyncio.sleep(0), timeout=1)
    lt.call_soon(print, "dropped silently")  # no error after stop

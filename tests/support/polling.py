"""Polling instead of sleeping: a test waits for the state it needs, not for a guessed time.

    assert wait_until(lambda: server.stats()["sessions"] == 0)
    eventually(lambda: partial.exists(), timeout=20, what="a partial file")
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """True as soon as predicate() is truthy; False if it is still falsy after `timeout` seconds
    (checked once more at the deadline, so a slow machine gets the last look)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def eventually(predicate: Callable[[], object], timeout: float = 20.0, *, what: str = "the condition",
               interval: float = 0.05) -> None:
    """Like wait_until, but fails the test naming what it waited for."""
    if not wait_until(predicate, timeout, interval):
        raise AssertionError(f"{what} not reached within {timeout:g} s")


def stays(predicate: Callable[[], object], seconds: float, interval: float = 0.02) -> bool:
    """True if predicate() holds throughout `seconds` (something that must not happen, didn't);
    False as soon as it fails."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(interval)
    return bool(predicate())

"""`@pytest.mark.alone`: a test that no other test of the run may run beside.

For the few tests that measure time or need the CPU when they ask for it (a round trip from
one handshake sample): under pytest-xdist (scripts/test.sh) the other workers' tests would
be in their numbers. Every test of a worker holds a lock on a file shared by the run
(tests/support/run_once.py's directory) while it runs: shared for most, exclusive for `alone`
tests. A gate in front keeps the exclusive ones from waiting forever behind a stream of
shared holders: once an `alone` test asks, no new test starts until it has run. The wait is
outside the test's own phases, so neither its timeout nor its reported duration includes it.
In a run without workers there is nothing to keep apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.run_once import is_xdist_worker, shared_root

MARK = "alone"


@contextlib.contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def turn(root: Path, alone: bool) -> Iterator[None]:
    """Hold the run's lock for one test: exclusive if `alone`, else shared with the others."""
    gate, lock = root / "alone.gate", root / "alone.lock"
    if alone:
        with _flock(gate, fcntl.LOCK_EX), _flock(lock, fcntl.LOCK_EX):
            yield
    else:
        with _flock(gate, fcntl.LOCK_EX):  # passed at once unless an alone test waits
            held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(held, fcntl.LOCK_SH)
            except BaseException:
                os.close(held)
                raise
        try:
            yield
        finally:
            os.close(held)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: around pytest-timeout's timer too
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    if not is_xdist_worker(item.config):
        yield
        return
    with turn(shared_root(item.config), item.get_closest_marker(MARK) is not None):
        yield

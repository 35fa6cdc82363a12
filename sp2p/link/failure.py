"""First failure wins: the cause a pipeline reports is the first thing that went wrong.

A pipeline runs on several threads. Once one of them fails (the peer's Error, a protocol
violation, a local write error), the others fail too, as consequences: a machine already in
FAILED, a link torn down. Those are secondary; they are logged, never shown, so the message
and the exit code always name the real cause.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sp2p.log import get_logger

log = get_logger(__name__)


class FirstFailure:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.cause: BaseException | None = None

    def record(self, exc: BaseException) -> BaseException:
        """Keep `exc` if it is the first failure; returns the first one."""
        with self._lock:
            if self.cause is None:
                self.cause = exc
            elif exc is not self.cause:
                log.debug("secondary failure after %r: %r", self.cause, exc)
            return self.cause

    @contextmanager
    def step(self) -> Iterator[None]:
        """A state-machine call whose failure is recorded before any other thread's next step
        (else a thread seeing the machine FAILED could record its consequence first)."""
        with self._lock:
            try:
                yield
            except BaseException as exc:
                self.record(exc)
                raise

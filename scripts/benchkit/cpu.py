"""CPU seconds of child processes."""

from __future__ import annotations

import resource


class ChildCpu:
    """User + system seconds of the children that finished (and were waited for) inside the
    `with` block: both peers of a transfer spawned by this process."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    @staticmethod
    def _now() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> ChildCpu:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._now() - self._start

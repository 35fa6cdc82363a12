"""Transfer counters, optionally persisted to `<config-dir>/stats.json`.

Same file format as the original (indented JSON with attemptedSends, connectedSends,
completedSends, bytesTransferred), but written atomically (temp file + rename, W-25) and
only when a config directory was given: by default the server keeps no state on disk.
The store counts (`SharedCounters`: in memory for one process, in Redis for several
workers or nodes), seeded once from the file; this module loads and writes the file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from server.store import SharedCounters, StoreUnavailable

log = logging.getLogger("sp2p.server")

ATTEMPTED = "attemptedSends"
CONNECTED = "connectedSends"
COMPLETED = "completedSends"
BYTES = "bytesTransferred"
_FIELDS = (ATTEMPTED, CONNECTED, COMPLETED, BYTES)


class MemoryCounters:
    """The totals of one process (server.sessions.MemoryStore counts into them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def incr(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def seed(self, values: dict[str, int]) -> None:
        with self._lock:
            for key, value in values.items():
                self._values.setdefault(key, value)


class Stats:
    def __init__(self, counters: SharedCounters, path: Path | None = None, interval: float = 5.0) -> None:
        self._counters = counters
        self._path = path
        self._interval = interval
        #: the last totals read (shown while the store is unreachable) and written
        self._values = dict.fromkeys(_FIELDS, 0)
        self._written: dict[str, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._load(path)
            self._written = dict(self._values)
        try:
            counters.seed(dict(self._values))
        except StoreUnavailable as exc:
            log.warning("stats: %s", exc)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return
        if isinstance(data, dict):
            for key in _FIELDS:
                value = data.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    self._values[key] = value

    def snapshot(self) -> dict[str, int]:
        try:
            totals = self._counters.totals()
        except StoreUnavailable:
            return dict(self._values)
        self._values = {key: totals.get(key, 0) for key in _FIELDS}
        return dict(self._values)

    def start(self) -> None:
        if self._path is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sp2p-stats", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        """Write the file if the totals changed since it was last written."""
        if self._path is None:
            return
        data = self.snapshot()
        if data == self._written:
            return
        try:
            write_atomic(self._path, json.dumps(data, indent=2) + "\n")
            self._written = data
        except OSError as exc:
            log.warning("cannot write %s: %s", self._path, exc)

    def stop(self) -> None:
        """Stop the writer and flush once more; idempotent."""
        self._stop.set()
        self.flush()


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

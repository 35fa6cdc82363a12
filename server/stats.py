"""Transfer counters, optionally persisted to `<config-dir>/stats.json`.

Same file format as the original (indented JSON with attemptedSends, connectedSends,
completedSends, bytesTransferred), but written atomically (temp file + rename, W-25) and
only when a config directory was given: by default the server keeps no state on disk.
With several workers or nodes the counters live in the shared store (`SharedCounters`),
seeded once from the file, so every worker writes the same totals instead of its own.
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

_FIELDS = ("attemptedSends", "connectedSends", "completedSends", "bytesTransferred")


class Stats:
    def __init__(
        self, path: Path | None = None, interval: float = 5.0, shared: SharedCounters | None = None
    ) -> None:
        self._path = path
        self._interval = interval
        self._shared = shared
        self._lock = threading.Lock()
        self._values = dict.fromkeys(_FIELDS, 0)
        self._dirty = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._load(path)
        if shared is not None:
            try:
                shared.seed(dict(self._values))
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

    def add(self, key: str, amount: int = 1) -> None:
        if self._shared is not None:
            try:
                self._shared.incr(key, amount)
                with self._lock:
                    self._dirty = True
                return
            except StoreUnavailable:
                pass  # counted locally meanwhile; lost from the shared totals
        with self._lock:
            self._values[key] += amount
            self._dirty = True

    def snapshot(self) -> dict[str, int]:
        if self._shared is not None:
            try:
                totals = self._shared.totals()
                return {key: totals.get(key, 0) for key in _FIELDS}
            except StoreUnavailable:
                pass
        with self._lock:
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
        if self._path is None:
            return
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
        data = self.snapshot()
        try:
            write_atomic(self._path, json.dumps(data, indent=2) + "\n")
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

"""The server's log handler: lines formatted at once, written in batches.

A line per connection event is what operators expect, but one write() per line made
logging the largest single cost of a mass disconnect (43 % of the teardown CPU for 10,000
senders leaving at once, py-spy) and 12 % of accepting. Lines are queued and written
together by a timer `DELAY` seconds after the first one of a batch, so a storm costs a few
writes; a quiet server's line still shows within `DELAY`. Pending lines are written before
a fork (gunicorn's workers) and at exit (logging.shutdown flushes every handler).

`info()` is logger.info for the lines every session writes (opened, paired, ended): when
the line would only reach a BatchingHandler whose LineFormatter needs nothing but the time,
level, logger name and message, it is formatted and queued there directly, without a
LogRecord and the handler chain (12 us -> 2 us a line; logging was ~4 % of a worker's CPU
with 3 lines per exchange). Anything else (another handler, a filter, caplog in a test)
takes logging's usual path.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from typing import TextIO

#: how long a line may wait for company
DELAY = 0.05
#: the record fields a format may use for info()'s direct path
_DIRECT_FIELDS = frozenset({"asctime", "levelname", "name", "message"})


def info(logger: logging.Logger, msg: str, *args: object) -> None:
    """`logger.info(msg, *args)`, formatted straight into the handler when that is the
    only place the line goes (module docstring)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    target = _direct_target(logger)
    if target is None:
        logger.info(msg, *args)
        return
    handler, formatter = target
    handler.queue(formatter.line(time.time(), "INFO", logger.name, msg % args if args else msg))


def _direct_target(logger: logging.Logger) -> tuple[BatchingHandler, LineFormatter] | None:
    """The one handler an INFO line of `logger` reaches, if it is a filterless
    BatchingHandler with a direct LineFormatter and nothing filters on the way."""
    found: logging.Handler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if found is not None:
                return None
            found = handler
        if not node.propagate:
            break
        node = node.parent
    if not isinstance(found, BatchingHandler) or found.filters or found.level > logging.INFO:
        return None
    formatter = found.formatter
    if not isinstance(formatter, LineFormatter) or not formatter.direct:
        return None
    return found, formatter


class LineFormatter(logging.Formatter):
    """logging.Formatter whose `asctime` formats the date and time once per second (a
    connection's line came to ~15 us, a third of it localtime + strftime)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._stamp = ""
        #: line() can format without a record: only these fields, %-style
        self.direct = set(re.findall(r"%\((\w+)\)", fmt)) <= _DIRECT_FIELDS

    def line(self, created: float, levelname: str, name: str, message: str) -> str:
        """What format() makes of a record with these fields (no exception, no stack)."""
        asctime = self._asctime(created, int((created - int(created)) * 1000))  # LogRecord's msecs
        fields = {"asctime": asctime, "levelname": levelname, "name": name, "message": message}
        return self._fmt % fields  # type: ignore[operator] # set by Formatter.__init__

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return self._asctime(record.created, int(record.msecs))

    def _asctime(self, created: float, msecs: int) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{msecs:03d}"


class BatchingHandler(logging.Handler):
    def __init__(self, stream: TextIO, delay: float = DELAY) -> None:
        super().__init__()
        self._stream = stream
        self._delay = delay
        #: lines not yet written; a deque, so queueing needs no lock (appends and pops are
        #: atomic across threads; the handler's lock, a pure-Python RLock under gevent, was
        #: half the cost of a line)
        self._pending: deque[str] = deque()
        self._timer: threading.Timer | None = None
        os.register_at_fork(before=self.flush, after_in_child=self._forget_timer)

    def handle(self, record: logging.LogRecord) -> bool:
        """As Handler.handle, without holding the handler's lock (the patched, pure-Python
        RLock under gevent) around emit(): emit formats outside any lock and takes it only
        to queue the line."""
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # 3.12: a filter may hand back a new record
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        self.queue(line)

    def queue(self, line: str) -> None:
        """Queue one formatted line; the first of a batch starts the timer."""
        self._pending.append(line)
        if self._timer is None:
            with self.lock:  # type: ignore[union-attr] # created by Handler.__init__
                if self._timer is None:
                    self._timer = threading.Timer(self._delay, self.flush)
                    self._timer.daemon = True
                    self._timer.start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr] # one writer at a time, lines in order
            self._timer = None  # before draining: a line queued after the drain arms a new timer
            lines = []
            while True:
                try:
                    lines.append(self._pending.popleft())
                except IndexError:
                    break
            if lines:
                try:
                    self._stream.write("\n".join(lines) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # stderr gone: nowhere left to tell

    def _forget_timer(self) -> None:
        """In a fresh child: the parent's timer thread did not come along."""
        self._timer = None
        self._pending = deque()

    def close(self) -> None:
        self.flush()
        super().close()

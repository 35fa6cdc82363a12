"""Log calls that load `logging` only when something will see the line (issue 12).

`logging` brings traceback, linecache, tokenize, string and weakref: ~5 ms of every start, for
debug lines a normal run never shows. `get_logger(name)` returns a stand-in with the same calls.
While the logging module is not loaded, nobody can have configured a handler or a level, so the
stdlib itself would drop debug and info lines: the stand-in drops them without loading it. Once
it is loaded (by -v in sp2p.cli, a test's caplog, a bench's tracer, aiortc) every call goes to
`logging.getLogger(name)`. Warnings and errors always go there (its last-resort handler prints
them on stderr, as before).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logging import Logger as _StdLogger


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            _real(self.name).debug(msg, *args, stacklevel=2)

    def info(self, msg: str, *args: object) -> None:
        if "logging" in sys.modules:
            _real(self.name).info(msg, *args, stacklevel=2)

    def warning(self, msg: str, *args: object) -> None:
        _real(self.name).warning(msg, *args, stacklevel=2)

    def exception(self, msg: str, *args: object) -> None:
        _real(self.name).exception(msg, *args, stacklevel=2)


def _real(name: str) -> _StdLogger:
    import logging

    return logging.getLogger(name)


def get_logger(name: str) -> Logger:
    return Logger(name)


"""Terminal output, by these rules:

1. stdout carries only what a script may want: the transfer code and the share URL
   (sender; not repeated when stdout is the same terminal as stderr), and with -stdout
   the received payload itself. Everything else goes to stderr.
2. Lines are prefixed by two spaces; errors read `sp2p: error: …` with an optional
   `sp2p: hint: …`. No traceback unless --debug.
3. Anything that came from the peer or the server is passed through escape_peer_text
   before it is printed, so it cannot move the cursor, rename the window or hide text.
4. Redrawing (\\r, erase line) happens only when stderr is a terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

from sp2p.term.textsafe import escape_peer_text

#: the live line's indent, as every line's
LIVE_INDENT = 2


def human_size(n: float) -> str:
    """IEC units (1024-based, so KiB, MiB …): one decimal, whole bytes below 1 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "<1s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def count(n: int, noun: str) -> str:
    """`1 file`, `3 files`: English plurals of the nouns we count (all take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe(name: str, size: int, file_count: int = 0, *, stream: bool = False) -> str:
    """`name (1.2 MiB, 3 files)`; a stream's size is not known up front, so none is shown.
    `name` must already be escaped when it came from the peer."""
    files = f", {count(file_count, 'file')}" if file_count else ""
    amount = "size not known in advance" if stream else human_size(size)
    return f"{name} ({amount}{files})"


def moved_line(nbytes: int, elapsed: float, verb: str, transport: str) -> str:
    """The summary after a transfer: `12.0 MiB sent in 3s (4.0 MiB/s) via TCP`."""
    speed = nbytes / max(elapsed, 1e-6)
    return f"{human_size(nbytes)} {verb} in {human_duration(elapsed)} ({human_size(speed)}/s) via {transport}"


class Terminal:
    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, verbose: bool = False
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.verbose = verbose
        self.is_tty = bool(getattr(self.err, "isatty", lambda: False)())
        self.out_is_tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._live = False  # a progress line is on screen and must be cleared first
        self._t0 = time.monotonic()

    def _put(self, text: str, *, stdout: bool = False) -> None:
        """Write and flush (the lock held). A stream whose reader went away (`2>&1 | head`)
        is dropped: messages are not worth a transfer, and the code is on both streams."""
        stream = self.out if stdout else self.err
        try:
            stream.write(text)
            stream.flush()
        except OSError:
            nowhere = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as we do
            if stdout:
                self.out = nowhere
            else:
                self.err = nowhere

    def _write_err(self, text: str) -> None:
        with self._lock:
            if self._live:
                self._put("\r\x1b[2K")
                self._live = False
            self._put(text)

    def write(self, text: str) -> None:
        """`text` to stderr as it is (usage, -help, a -debug traceback)."""
        self._write_err(text)

    def line(self, text: str = "") -> None:
        self._write_err(f"  {text}\n" if text else "\n")

    def peer_text(self, text: str | bytes, max_len: int = 200) -> str:
        return escape_peer_text(text, max_len)

    def debug(self, text: str) -> None:
        if self.verbose:
            stamp = time.strftime("%H:%M:%S")
            self._write_err(f"  [{stamp}] {text}\n")

    @property
    def one_screen(self) -> bool:
        """stdout and stderr both go to the terminal: what is on stderr needs no stdout copy."""
        return self.is_tty and self.out_is_tty

    def stdout_line(self, text: str) -> None:
        with self._lock:
            self._put(text + "\n", stdout=True)

    def error(self, message: str, hint: str | None = None) -> None:
        self._write_err(f"sp2p: error: {message}\n")
        if hint:
            self._write_err(f"sp2p: hint: {hint}\n")

    def warn(self, message: str) -> None:
        self._write_err(f"sp2p: warning: {message}\n")

    def erase_lines(self, count: int) -> None:
        """Remove the last `count` lines written (a terminal only: up, then clear to the end)."""
        if self.is_tty and count > 0:
            with self._lock:
                self._put(f"\x1b[{count}A\x1b[J")

    def columns(self) -> int | None:
        """The terminal's width now (it may have been resized), or None without one."""
        try:
            return os.get_terminal_size(self.err.fileno()).columns or None
        except (OSError, ValueError, AttributeError):  # not a descriptor, or not a terminal
            return None

    def live(self, text: str) -> None:
        """A line that the next live() replaces (TTY only; callers throttle plain output). It
        is cut to the terminal's width: a wrapped line would not be cleared by the next one."""
        columns = self.columns()
        if columns is not None:
            text = text[: max(columns - LIVE_INDENT - 1, 0)]
        with self._lock:
            self._put("\r\x1b[2K" + " " * LIVE_INDENT + text)
            self._live = True

    def end_live(self) -> None:
        with self._lock:
            if self._live:
                self._put("\n")
                self._live = False

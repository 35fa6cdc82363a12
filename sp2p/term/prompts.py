"""Questions on the controlling terminal (/dev/tty), never on stdin/stdout.

stdin and stdout may carry the payload (`send -`, `receive -stdout`), so the code prompt
and the accept question talk to the terminal device itself. Opened unbuffered in binary
mode: a text-mode "r+" open of a tty raises io.UnsupportedOperation (not seekable).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

try:  # POSIX only; elsewhere there is no prompt (the code comes from argv or SP2P_CODE)
    import termios
except ImportError:  # pragma: no cover - Windows
    termios = None  # type: ignore[assignment]

#: a pasted share URL fits easily; anything longer is not a code
MAX_LINE = 4096


class NoTerminal(Exception):
    """There is no controlling terminal to ask."""


@contextlib.contextmanager
def open_tty() -> Iterator[int]:
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as exc:
        raise NoTerminal(str(exc)) from None
    try:
        yield fd
    finally:
        os.close(fd)


def has_tty() -> bool:
    try:
        with open_tty():
            return True
    except NoTerminal:
        return False


def _read_line(fd: int) -> str | None:
    """A line without its end; None at end of input (Ctrl-D) before any character."""
    buf = bytearray()
    while len(buf) < MAX_LINE:
        b = os.read(fd, 1)
        if not b:
            return buf.decode("utf-8", errors="replace") if buf else None
        if b in (b"\n", b"\r"):
            break
        buf += b
    return buf.decode("utf-8", errors="replace")


@contextlib.contextmanager
def _no_echo(fd: int) -> Iterator[None]:
    if termios is None or not os.isatty(fd):
        yield
        return
    old = termios.tcgetattr(fd)
    new = list(old)
    new[3] &= ~termios.ECHO  # lflag: keep canonical mode (line editing), drop echo
    termios.tcsetattr(fd, termios.TCSAFLUSH, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)


def ask_secret(prompt: str) -> str:
    """One line typed (or pasted) on the terminal without echoing it into the scrollback.

    Raises:
        NoTerminal: no controlling terminal.
    """
    with open_tty() as fd:
        try:
            with _no_echo(fd):
                # shown once echo is off: turning it off flushes pending input, which would
                # drop a code pasted (or a Ctrl-D typed) as soon as the prompt appeared
                os.write(fd, prompt.encode())
                text = _read_line(fd)
        finally:
            os.write(fd, b"\n")
    return text or ""


def ask_yes_no(question: str, *, default: bool = True) -> bool:
    """`question [Y/n] ` on the terminal; Enter takes the default, Ctrl-D says no.

    Raises:
        NoTerminal: no controlling terminal.
    """
    suffix = " [Y/n] " if default else " [y/N] "
    with open_tty() as fd:
        while True:
            os.write(fd, (question + suffix).encode())
            line = _read_line(fd)
            if line is None:
                os.write(fd, b"\n")
                return False
            answer = line.strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            os.write(fd, b"  Please answer y or n.\n")


RELAY_QUESTION = (
    "\n  Could not establish a direct connection.\n"
    "  A TURN relay is available \u2014 data stays E2E encrypted.\n"
    "\n  Allow relay?"
)


def ask_relay_consent() -> bool:
    """The relay question (client.md §4.9) on the terminal itself, so it works under
    `curl | sh`; Enter, Ctrl-D or no terminal at all mean no."""
    try:
        return ask_yes_no(RELAY_QUESTION, default=False)
    except (NoTerminal, OSError):
        return False


class KeyListener:
    """Hands each key typed on the terminal to `on_key` while in the `with` block.

    The terminal is in cbreak mode meanwhile (no line buffering, no echo; Ctrl-C still
    interrupts) and restored on exit. Does nothing without a terminal, or when the process
    is not in the foreground (changing a background job's terminal would stop it).
    """

    def __init__(self, on_key: Callable[[str], None]) -> None:
        self._on_key = on_key
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> KeyListener:
        if termios is None:
            return self
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return self
        try:
            if os.tcgetpgrp(fd) != os.getpgrp():
                os.close(fd)
                return self
            self._saved = termios.tcgetattr(fd)
            mode = termios.tcgetattr(fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(fd, termios.TCSANOW, mode)
        except OSError:
            os.close(fd)
            return self
        self._fd = fd
        self._thread = threading.Thread(target=self._run, name="sp2p-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        fd = self._fd
        assert fd is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 1)
            except OSError:
                return
            if not data:
                return
            self._on_key(data.decode("latin-1"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if self._saved is not None and termios is not None:
                    termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            os.close(self._fd)
            self._fd = None

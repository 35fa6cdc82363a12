"""Questions on the controlling terminal (/dev/tty), never on stdin/stdout.

stdin and stdout may carry the payload (`send -`, `receive -stdout`), so the code prompt
and the accept question talk to the terminal device itself. Opened unbuffered in binary
mode: a text-mode "r+" open of a tty raises io.UnsupportedOperation (not seekable).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

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
        os.write(fd, prompt.encode())
        try:
            with _no_echo(fd):
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

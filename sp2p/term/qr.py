"""The share URL as a QR code in the terminal, two module rows per text line (half blocks).

segno builds the symbol (a maintained, dependency-free QR encoder); this module only draws
it. On a terminal the code is drawn black on white with explicit colours, so it scans on
dark and light themes alike; elsewhere dark modules are plain blocks.
"""

from __future__ import annotations

import threading

import segno

from sp2p.term.ui import Terminal

#: index = top dark + 2 * bottom dark
_HALF_BLOCKS = (" ", "\u2580", "\u2584", "\u2588")
#: black foreground on a white background, then back to the terminal's colours
_ON, _OFF = "\x1b[30;47m", "\x1b[0m"
#: light modules around the symbol; 2 is what phone cameras need in practice (Go: 2)
QUIET_ZONE = 2


def qr_lines(text: str, *, color: bool) -> list[str]:
    """The QR code of `text` as lines of half-block characters (error level L or better)."""
    rows = [list(r) for r in segno.make_qr(text, error="l").matrix_iter(scale=1, border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        line = "".join(_HALF_BLOCKS[bool(t) + 2 * bool(b)] for t, b in zip(top, bottom, strict=True))
        lines.append(f"{_ON}{line}{_OFF}" if color else line)
    return lines


class QrToggle:
    """The QR code under the share lines: shown at once with -qr, toggled by `q` on a terminal."""

    def __init__(self, term: Terminal, url: str, *, shown: bool, keys: bool = True) -> None:
        self.term = term
        self.url = url
        self.keys = keys and term.is_tty  #: whether `q` reaches us (not while it is typed data)
        self._drawn = 0  # lines on screen right now
        self._lock = threading.Lock()
        if shown:
            self.toggle()

    def on_key(self, key: str) -> None:
        if key in ("q", "Q"):
            self.toggle()

    def toggle(self) -> None:
        with self._lock:
            if self._drawn:
                self.term.erase_lines(self._drawn)
                self._drawn = 0
                return
            lines = qr_lines(self.url, color=self.term.is_tty)
            lines.append("(press q to hide)" if self.keys else "")
            for line in lines:
                self.term.line(line)
            self._drawn = len(lines)

"""The progress line on a narrow terminal (a phone's ssh client, a split pane), through the real
CLI on pseudo-terminals: a line wider than the terminal wraps, and the redraw (carriage return,
erase line) then clears only its last row, leaving a new line behind on every redraw."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sp2p.term.progress import Progress
from sp2p.term.ui import Terminal
from tests.e2e.ptyrun import finish_tty, spawn_tty

REDRAW = "\r\x1b[2K"


def _rows(screen: str) -> list[str]:
    """Every row the terminal was asked to draw: the pieces between line ends and redraws."""
    return [row for part in screen.split(REDRAW) for row in part.split("\r\n")]


@pytest.mark.parametrize("cols", [40, 60])
def test_the_progress_line_fits_a_narrow_terminal(env: dict[str, str], tmp_path: Path, outdir: Path,
                                                   cols: int) -> None:
    src = tmp_path / "twelve.bin"
    src.write_bytes(os.urandom(12 << 20))
    sender = spawn_tty(["send", "-compress", "0", str(src)], env, cols=cols)
    sender.expect(r"Waiting for receiver")
    code = sender.before.split("SP2P_CODE=", 1)[1].split()[0]
    receiver = spawn_tty(["receive", "-yes", "-output", str(outdir), code], env, cols=cols)
    for child in (receiver, sender):
        rc, screen = finish_tty(child, timeout=120)  # all it drew since the code
        assert rc == 0, screen
        frames = [row for row in _rows(screen) if "%" in row]
        assert "100%" in frames[-1] and all(len(row) < cols for row in frames), (cols, frames)
    assert (outdir / src.name).stat().st_size == src.stat().st_size


@pytest.mark.parametrize(("cols", "frame"), [
    (100, "[################################] 100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (72, "[######################] 100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (60, "[##########] 100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (56, "100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (40, "100%  10.0 MiB  5.0 MiB/s  in 2s"),
    (30, "100%  10.0 MiB  in 2s"),
    (12, "100%  10."),  # cut: nothing shorter is left
])
def test_the_frame_gives_up_the_bar_then_the_rest_before_it_is_cut(cols: int, frame: str) -> None:
    class Narrow(Terminal):
        def columns(self) -> int | None:
            return cols

    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    now = [0.0]
    progress = Progress(Narrow(io.StringIO(), err), verb="Receiving", total=10 << 20, clock=lambda: now[0])
    now[0] = 2.0
    progress.finish(10 << 20)
    last = err.getvalue().split(REDRAW)[-1]
    assert last == f"  {frame}\n"
    assert len(last.rstrip("\n")) < cols

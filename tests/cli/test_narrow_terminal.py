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
    (72, "[############] 100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (60, "100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s"),
    (56, "100%  10.0 MiB  5.0 MiB/s  in 2s"),
    (40, "100%  10.0 MiB  in 2s"),
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


def test_the_layout_holds_for_the_whole_transfer() -> None:
    """The layout was chosen from each frame's own length, so at 50 columns it flipped between
    '98.5 MiB of 286.1 MiB …' and '112.2 MiB …' as the digits changed."""
    import io

    class Narrow(Terminal):
        def columns(self) -> int | None:
            return 50

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    now = [0.0]
    total = 300_000_000
    progress = Progress(Narrow(io.StringIO(), err), verb="Receiving", total=total, clock=lambda: now[0])
    for i in range(1, 200):
        now[0] = i * 0.11
        progress.update(total * i // 200 + (i % 7) * 1000)
    frames = [f.strip() for f in err.getvalue().split(REDRAW) if f.strip()]
    assert len(frames) > 100
    assert {(" of " in f, f.count("  ")) for f in frames} == {(False, 3)}, frames
    assert all(len("  " + f) < 50 for f in frames)

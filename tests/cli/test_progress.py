"""The progress renderer with an injected clock: redraw rate, milestones, the final frame."""

from __future__ import annotations

import io

from sp2p.term.progress import Progress
from sp2p.term.ui import Terminal


class _TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drive(term: Terminal, total: int | None, seconds: float, updates: int) -> Progress:
    now = [0.0]
    progress = Progress(term, verb="Sending", total=total, clock=lambda: now[0])
    for i in range(1, updates + 1):
        now[0] = seconds * i / updates
        progress.update((total or 1000 * updates) * i // updates)
    progress.finish()
    return progress


def test_terminal_redraws_at_most_ten_times_a_second_and_ends_at_100() -> None:
    err = _TtyBuffer()
    _drive(Terminal(io.StringIO(), err), 10 << 20, seconds=2.0, updates=5000)
    frames = err.getvalue().split("\r\x1b[2K")[1:]
    assert 2 <= len(frames) <= 2 * 10 + 2
    assert frames[-1].startswith("  [" + "#" * 32 + "] 100%  10.0 MiB of 10.0 MiB  5.0 MiB/s  in 2s")
    assert frames[-1].endswith("\n")  # the final frame stays


def test_log_gets_milestones_and_a_final_line() -> None:
    err = io.StringIO()
    _drive(Terminal(io.StringIO(), err), 1 << 30, seconds=100.0, updates=5000)
    lines = err.getvalue().splitlines()
    assert [line.split("%")[0].strip() for line in lines] == [
        "Sending:  25", "Sending:  50", "Sending:  75", "Sending: 100",
    ]
    assert "\r" not in err.getvalue()


def test_unknown_size_has_no_percentage() -> None:
    err = io.StringIO()
    _drive(Terminal(io.StringIO(), err), None, seconds=95.0, updates=950)
    lines = err.getvalue().splitlines()
    assert len(lines) == 4  # every 30 s, then the final line
    assert all("%" not in line and "ETA" not in line for line in lines)
    assert lines[-1].strip().startswith("Sending:  927.7 KiB  9.8 KiB/s  in 1m35s")


def test_log_of_a_transfer_done_in_one_step_has_one_100_line() -> None:
    """A small file's first update is already 100 %: it crossed every milestone at once and the
    log read 'Sending: 100% … ETA <1s' and then the final 'Sending: 100% … in <1s'."""
    err = io.StringIO()
    _drive(Terminal(io.StringIO(), err), 6, seconds=0.01, updates=1)
    assert [line.strip() for line in err.getvalue().splitlines()] == ["Sending: 100%  6 B of 6 B  600 B/s  in <1s"]

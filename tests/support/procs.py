"""What a test can read about its child processes in /proc (Linux): which programs a session
runs, whether a process is stopped, how far it has read a file. Used to act on a process only
once it is in the state the test means, instead of after a guessed delay."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def _stat_fields(pid: int | str, task: str = "") -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of /proc/PID[/task/TID]/stat; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}{task}/stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces or parentheses itself
    return text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()


def session_programs(sid: int) -> list[str]:
    """The comm (program name, set by execve) of every live process in session `sid`."""
    names = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat_fields(entry)) is not None:
            comm, fields = stat
            if int(fields[3]) == sid and fields[0] != "Z":  # fields[3]: session id
                names.append(comm)
    return names


def wait_for_program(sid: int, comm: str, timeout: float = 20) -> None:
    """Until a process of session `sid` runs `comm`: execve sets the name, so from then on
    the process has its own signal dispositions, not the ones of the shell that forked it."""
    deadline = time.monotonic() + timeout
    while comm not in session_programs(sid):
        assert time.monotonic() < deadline, f"{comm} never ran in session {sid}: {session_programs(sid)}"
        time.sleep(0.005)


def wait_stopped(pid: int, timeout: float = 10) -> None:
    """Until every thread of `pid` is stopped (after SIGSTOP): none runs another instruction."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                if (stat := _stat_fields(pid, f"/task/{tid}")) is not None:
                    states.append(stat[1][0])
        if all(state in "tTZX" for state in states):
            return  # stopped, or gone (a zombie or nothing left runs either)
        assert time.monotonic() < deadline, f"process {pid} did not stop: {states}"
        time.sleep(0.001)


def read_positions(pid: int, path: Path) -> list[int]:
    """The file offset of each descriptor `pid` holds open on `path` (how far it has read)."""
    target = str(path.resolve())
    positions = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    positions.append(int(info.split("pos:", 1)[1].split()[0]))
    return positions

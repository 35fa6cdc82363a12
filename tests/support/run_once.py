"""Expensive work done once per test run, shared by every pytest-xdist worker.

`RunOnce(config, "pyinstaller")` names a directory shared by the whole run: under xdist the
controller's basetemp, which holds every worker's own basetemp (`popen-gwN`); in a plain run
pytest's basetemp. The first process to `claim` it starts the command there, detached in its
own process group; its exit status lands in a file, so any worker can `wait` for the result,
including workers whose claim lost. The run's last process to finish (the xdist controller, or
the only process) kills a command still running and removes the directory
(`pytest_sessionfinish` below; registered in tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

#: every job's directory lives under this, in the run's shared directory
JOBS = "run-once"


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def shared_root(config: pytest.Config) -> Path:
    """The directory every process of this run sees (a worker's basetemp is inside it)."""
    base: Path = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if is_xdist_worker(config) else base


@dataclass
class RunOnce:
    """One command for the whole run in `<shared root>/run-once/<name>/`: `stdout`, `stderr`,
    `pgid` while it runs, `rc` once it is done."""

    dir: Path

    @classmethod
    def of(cls, config: pytest.Config, name: str) -> RunOnce:
        return cls(shared_root(config) / JOBS / name)

    def claim(self, argv: Sequence[str], cwd: Path, inputs: Mapping[str, str] | None = None) -> bool:
        """Start `argv` unless some process of this run already did; True if we started it.
        `inputs`: files (name -> text) written into the job's directory first."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir()  # atomic: exactly one process of the run gets here first
        except FileExistsError:
            return False
        for name, text in (inputs or {}).items():
            (self.dir / name).write_text(text)
        # detached (setsid -f: a new session, and no child of ours a worker would have to reap
        # or leave unreaped at its exit); the status goes through a temp name: a reader sees all
        # of it or nothing
        wrapper = ('echo $$ > "$1/pgid.tmp"; mv "$1/pgid.tmp" "$1/pgid"; cd "$2" && "${@:3}"; '
                   'echo $? > "$1/rc.tmp"; mv "$1/rc.tmp" "$1/rc"')
        with (self.dir / "stdout").open("wb") as out, (self.dir / "stderr").open("wb") as err:
            subprocess.run(["setsid", "-f", "bash", "-c", wrapper, "run-once", str(self.dir), str(cwd), *argv],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, check=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while not (self.dir / "pgid").exists():  # from here on `stop` can find it
            assert time.monotonic() < deadline, f"run-once job {self.dir.name} did not start"
            time.sleep(0.01)
        return True

    def wait(self, timeout: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of the command; killed (status -9) after `timeout` s."""
        deadline = time.monotonic() + timeout
        rc = self.dir / "rc"
        while not rc.exists():
            if time.monotonic() > deadline:
                self.stop()
                return -9, self._read("stdout"), self._read("stderr")
            time.sleep(0.2)
        return int(rc.read_text()), self._read("stdout"), self._read("stderr")

    def _read(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / name).read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """Kill the command and everything it started, if it still runs."""
        with contextlib.suppress(OSError, ValueError):
            if not (self.dir / "rc").exists():
                os.killpg(int((self.dir / "pgid").read_text()), signal.SIGKILL)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The last process of the run: nothing any job started outlives it, nothing is left."""
    if is_xdist_worker(session.config):
        return
    jobs = shared_root(session.config) / JOBS
    if jobs.is_dir():
        for job in jobs.iterdir():
            RunOnce(job).stop()
        shutil.rmtree(jobs, ignore_errors=True)

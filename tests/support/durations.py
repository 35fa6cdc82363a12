"""Where the suite's time goes, per directory (tests/e2e, tests/netlab, ...), printed after
pytest's own --durations list: the CI log then says which part grew, not only which test.

A directory's time is the sum of its tests' setup, call and teardown phases (a module- or
session-scoped fixture counts where it is first set up or last torn down). Under pytest-xdist
the controller gets every worker's reports: the times add up across workers.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath

import pytest


def part_of(nodeid: str) -> str:
    """`tests/e2e/test_x.py::t` -> `tests/e2e`; a test file right under tests/ is itself."""
    parts = PurePosixPath(nodeid.split("::", 1)[0]).parts
    return "/".join(parts[:2]) if len(parts) >= 3 else "/".join(parts)


class DirectoryTimes:
    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.tests: defaultdict[str, set[str]] = defaultdict(set)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        part = part_of(report.nodeid)
        self.seconds[part] += report.duration
        self.tests[part].add(report.nodeid)

    @pytest.hookimpl(trylast=True)  # after pytest's --durations list
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        terminalreporter.write_sep("=", "time per directory")
        for part, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:8.1f}s {len(self.tests[part]):5d} tests  {part}")
        total = f"{sum(self.seconds.values()):8.1f}s in all"
        workers = getattr(terminalreporter.config.option, "numprocesses", None)
        if workers:  # pytest-xdist: the workers' times add up to more than the wall time
            total += f" (summed over {workers} pytest-xdist workers)"
        terminalreporter.write_line(total)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(DirectoryTimes(), "sp2p-directory-times")

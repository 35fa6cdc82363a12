"""The CI log's timing report: scripts/test.sh asks pytest for the 30 slowest tests, and
tests/support/durations.py adds the time per directory (a real pytest run on a small tree)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.durations import part_of
from tests.support.server_proc import REPO_ROOT, clean_env


def test_ci_runs_pytest_with_the_slowest_tests_listed() -> None:
    pytest_lines = [line for line in (REPO_ROOT / "scripts/test.sh").read_text().splitlines()
                    if "-m pytest" in line and not line.lstrip().startswith("#")]
    assert pytest_lines and all("--durations=30" in line for line in pytest_lines), pytest_lines


def test_part_of_names_the_directory_under_tests() -> None:
    assert part_of("tests/e2e/test_x.py::test_y[a/b]") == "tests/e2e"
    assert part_of("tests/netlab/sub/test_x.py::T::test_y") == "tests/netlab"
    assert part_of("tests/test_top.py::test_y") == "tests/test_top.py"


def _two_directories(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    slow, quick = root / "tests" / "slow", root / "tests" / "quick"
    for folder in (slow, quick):
        folder.mkdir(parents=True)
    (slow / "test_s.py").write_text(
        "import time, pytest\n"
        "@pytest.fixture\ndef held():\n    yield\n    time.sleep(0.3)\n"
        "def test_one(held): time.sleep(0.3)\n"
        "def test_two(): pass\n"
    )
    (quick / "test_q.py").write_text("def test_three(): pass\n")


def _time_per_directory(root: Path, *args: str) -> tuple[list[tuple[str, str, str]], str]:
    """(seconds, tests, directory) rows of the report, and the report."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.durations", "-q", "-p", "no:cacheprovider",
         *args, "tests"],
        cwd=root, env=clean_env(), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = run.stdout.split("time per directory", 1)[1]
    return re.findall(r"^\s*([\d.]+)s\s+(\d+) tests\s+(\S+)$", report, re.M), report


def test_time_per_directory_is_summed_and_sorted(tmp_path: Path) -> None:
    _two_directories(tmp_path)
    rows, report = _time_per_directory(tmp_path, "-p", "no:xdist")
    assert [(count, part) for _, count, part in rows] == [("2", "tests/slow"), ("1", "tests/quick")], report
    assert float(rows[0][0]) >= 0.6, report  # the call and the fixture's teardown both count
    assert re.search(r"^\s*[\d.]+s in all$", report, re.M), report


def test_time_per_directory_adds_up_the_xdist_workers(tmp_path: Path) -> None:
    """scripts/test.sh runs the suite on pytest-xdist workers: the controller, which prints
    the report, gets every worker's test reports."""
    _two_directories(tmp_path)
    rows, report = _time_per_directory(tmp_path, "-n", "2")
    assert [(count, part) for _, count, part in rows] == [("2", "tests/slow"), ("1", "tests/quick")], report
    assert float(rows[0][0]) >= 0.6, report
    assert re.search(r"^\s*[\d.]+s in all \(summed over 2 pytest-xdist workers\)$", report, re.M), report

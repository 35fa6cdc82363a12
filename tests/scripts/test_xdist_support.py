"""What scripts/test.sh relies on under pytest-xdist, in a real `pytest -n 3` run on a small
tree: `alone` tests run with nothing beside them (tests/support/alone.py), and a RunOnce job
runs once for all workers, and nothing of it is left after the run, not even a job still
running then (tests/support/run_once.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.server_proc import clean_env

CONFTEST = '''
import os, time
from pathlib import Path
import pytest
from tests.support.run_once import RunOnce

LOG = Path(os.environ["SHARD_TEST_LOG"])


@pytest.fixture(scope="session")
def built(request):
    job = RunOnce.of(request.config, "count")
    job.claim(["sh", "-c", 'sleep 0.5; echo once >> "$1"', "sh", os.environ["SHARD_COUNT"]], cwd=Path.cwd())
    rc, _, _ = job.wait(timeout=30)
    assert rc == 0
    return (job.dir / "rc").is_file()


@pytest.fixture(scope="session")
def forgotten(request):
    """A job nobody waits for: still running when the run ends."""
    RunOnce.of(request.config, "forgotten").claim(
        ["sh", "-c", 'echo $$ > "$1"; exec sleep 120', "sh", os.environ["SHARD_FORGOTTEN"]], cwd=Path.cwd())


@pytest.fixture(autouse=True)
def stamp(request):
    start = time.monotonic()
    yield
    with LOG.open("a") as f:
        f.write(f"{request.node.name} {start} {time.monotonic()}\\n")
'''
TESTS = '''
import time
import pytest

@pytest.mark.parametrize("n", range(9))
def test_busy(n, built, forgotten):
    assert built
    time.sleep(0.4)

@pytest.mark.alone
@pytest.mark.parametrize("n", range(2))
def test_alone(n):
    time.sleep(0.4)
'''


def test_alone_tests_run_by_themselves_and_run_once_jobs_once(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    alone: x\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(CONFTEST)
    (tmp_path / "tests" / "test_t.py").write_text(TESTS)
    log, count, base, forgotten = (tmp_path / name for name in ("log", "count", "base", "forgotten"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.run_once", "-p", "tests.support.alone",
         "-q", "-p", "no:cacheprovider", "-n", "3", "--basetemp", str(base), "tests"],
        cwd=tmp_path, env={**clean_env(), "SHARD_TEST_LOG": str(log), "SHARD_COUNT": str(count),
             "SHARD_FORGOTTEN": str(forgotten)},
        capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    spans = {name: (float(a), float(b)) for name, a, b in (line.split() for line in log.read_text().splitlines())}
    assert len(spans) == 11, spans

    def overlap(x: str, y: str) -> bool:
        return spans[x][0] < spans[y][1] and spans[y][0] < spans[x][1]

    alone = [n for n in spans if n.startswith("test_alone")]
    assert [(a, b) for a in alone for b in spans if a != b and overlap(a, b)] == []
    busy = [n for n in spans if n.startswith("test_busy")]
    assert any(overlap(a, b) for a in busy for b in busy if a != b), spans  # the workers did run at once
    assert count.read_text() == "once\n"  # one job for three workers
    assert not (base / "run-once").exists()  # removed by the controller at the end
    assert "still running" not in run.stderr  # no worker left a child unreaped
    pid = int(forgotten.read_text())
    assert wait_until(lambda: gone(pid), timeout=10), "a job outlived the run"


def gone(pid: int) -> bool:
    """No such process, or a zombie (killed, not reaped yet by whoever adopted it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

"""scripts/bench_accept.py at a tiny size against a real 2-worker server on a real Redis, so
the benchmark cannot rot. Figures are not asserted; that every exchange went through, that
perf counted one accepted connection per connection, and that the report came out are."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.server_proc import REPO_ROOT, clean_env

SCRIPT = REPO_ROOT / "scripts" / "bench_accept.py"


def test_tiny_run_with_two_workers() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--target", "ours,workers=2,redis", "--rounds", "1",
         "--batches", "2", "--exchanges", "3", "--gap", "20", "--settle", "0.5"],
        capture_output=True, text=True, timeout=120, env=clean_env(), cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    row = re.search(r"^ours,workers=2,redis +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) .*$",
                    result.stdout, re.M)  # fmt: skip
    assert row, result.stdout
    # two connections accepted per exchange, plus each worker's handoff link to the other
    accepted = round(float(row.group(3)) * 6)
    assert 12 <= accepted <= 12 + 2, row.group(0)
    assert "exchanges failed" not in row.group(0)
    per_worker = re.search(r"\[(\d+), (\d+)\]", row.group(0))
    assert per_worker and int(per_worker.group(1)) + int(per_worker.group(2)) == accepted, row.group(0)

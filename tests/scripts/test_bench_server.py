"""scripts/bench_server.py at a tiny N against a real server, so the benchmark cannot rot.

Figures are not asserted (speed lives in the benchmark); what is asserted is that every
phase ran: idle senders accepted from their own source addresses, exchanges completed in
order, the mass close survived and the next session paired.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.server_proc import REPO_ROOT, clean_env

SCRIPT = REPO_ROOT / "scripts" / "bench_server.py"


def run_bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        cwd=REPO_ROOT,
    )


def test_tiny_run_against_our_server() -> None:
    # 20 idle senders over two generator processes, 2 concurrent exchanges, 1 s of probes
    result = run_bench(
        *("--target", "ours", "--idle", "20", "--per-process", "10", "--exchanges", "2"),
        *("--exchange-rounds", "1", "--watch", "1", "--settle", "0.2"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    row = re.search(r"round 1 ours N=20: accepted (\d+) at .*", result.stdout)
    assert row, result.stdout
    line = row.group(0)
    assert row.group(1) == "20", line
    assert "refused" not in line
    assert "(2 ok, " in line  # both exchanges went through to peer-left
    assert re.search(r"client CPU \d+ ms per round, steal \d+ ms;", line), line
    # each step of the burst, timed from the one before it
    steps = re.search(r"steps p50/p99 ms: connect \d+/\d+, hello \d+/\d+, dial \d+/\d+, join \d+/\d+, "
                      r"peer-joined \d+/\d+, exchange \d+/\d+\)", line)
    assert steps, line
    assert "idle dropped while held 0" in line
    assert "after mass close: up, next session paired in " in line
    assert "probes 1/1" in line
    assert re.search(r"^\| ours \| 20 \| 20 \| \d+ \|", result.stdout, re.M), result.stdout


def test_tiny_run_across_two_nodes_on_redis() -> None:
    # a real redis-server started by the bench; each exchange's sender and receiver on different nodes
    result = run_bench(
        *("--target", "ours,workers=1,redis,nodes=2", "--idle", "10", "--exchanges", "2"),
        *("--exchange-rounds", "1", "--watch", "0", "--settle", "0.2"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(r"round 1 ours,workers=1,redis,nodes=2 N=10: accepted 10 at .*", result.stdout)
    assert line, result.stdout
    assert "redis " in line.group(0)  # Redis' RSS shown apart from the nodes'
    assert "(2 ok, " in line.group(0)
    assert "after mass close: up, next session paired in " in line.group(0)


def test_bad_target_is_a_one_line_error() -> None:
    result = run_bench("--target", "nginx", "--idle", "1")
    assert result.returncode == 2
    assert "unknown target 'nginx'" in result.stderr
    assert "Traceback" not in result.stderr


def test_baseline_tree_target_runs_that_checkout() -> None:
    # this very checkout as the "other" tree: the server starts from it and every phase runs
    spec = f"ours,tree={REPO_ROOT}"
    result = run_bench(
        *("--target", spec, "--idle", "10", "--exchanges", "2"),
        *("--exchange-rounds", "1", "--watch", "0", "--settle", "0.2"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(rf"round 1 {re.escape(spec)} N=10: accepted 10 at .*", result.stdout)
    assert line, result.stdout
    assert "(2 ok, " in line.group(0)


def test_baseline_tree_that_is_not_a_checkout_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_bench("--target", f"ours,tree={tmp_path}", "--idle", "1")
    assert result.returncode == 2
    assert "not a checkout of this project" in result.stderr
    assert "Traceback" not in result.stderr

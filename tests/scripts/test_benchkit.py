"""scripts/benchkit: the pieces the benchmarks share, and bench_transfer end to end at a tiny size.

Figures are not asserted (speed lives in the benchmarks); what is asserted is that the rate the
receiver reports is parsed (the CLI's own summary line), rounds interleave, rows report failures,
and a real loopback transfer yields its three numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.benchkit.cli import LoopbackPair, reported_rate
from scripts.benchkit.inputs import sha256_file, tree_size, write_log, write_random
from scripts.benchkit.rows import Row, best_rows, interleaved, try_row
from sp2p.term.ui import human_size
from tests.support.server_proc import REPO_ROOT, clean_env


def test_reported_rate_reads_the_receivers_summary_line() -> None:
    line = f"{human_size(100 << 20)} received in 1s ({human_size(251.3 * (1 << 20))}/s) via TCP"
    assert round(reported_rate(line, 1, 1.0), 1) == round(251.3 * (1 << 20) / 1e6, 1)
    assert reported_rate("no summary", 4_000_000, 2.0) == 2.0  # falls back to size / elapsed


def test_interleaved_runs_round_by_round() -> None:
    order: list[str] = []
    runs = interleaved(2, ["a", "b"], lambda key: order.append(key) or len(order))
    assert order == ["a", "b", "a", "b"]
    assert runs == {"a": [1, 3], "b": [2, 4]}


def test_rows_keep_the_best_run_and_report_failures() -> None:
    speeds = iter([1e6, 3e6])
    rows = best_rows([("x", lambda: Row("x", next(speeds)))], 2)
    assert rows[0].bytes_per_s == 3e6 and rows[0].note.startswith("best of 2: 1.0, 3.0")

    def broken() -> float:
        raise RuntimeError("first line\nthe reason")

    row = try_row("broken", broken)
    assert row.bytes_per_s is None and row.note == "n/a (RuntimeError: the reason)"


def test_inputs(tmp_path: Path) -> None:
    rnd, log = write_random(tmp_path / "r", 2 << 20), write_log(tmp_path / "l", 100_000)
    assert tree_size(tmp_path) == (2 << 20) + 100_000
    assert sha256_file(rnd) != sha256_file(log)
    assert log.read_bytes().startswith(b"2026-11-25T06:00:00Z INFO request id=00000000")


def test_loopback_pair_transfers(tmp_path: Path) -> None:
    src = write_random(tmp_path / "src.bin", 4 << 20)
    with LoopbackPair(tmp_path / "home") as pair:
        run = pair.transfer(src, "-compress=0")
    assert run.rate > 0 and run.end_to_end > 0 and run.cpu > 0
    assert not list((tmp_path / "home").glob("out-*"))  # each transfer's folder is removed


def test_bench_transfer_tiny_run() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_transfer.py"), "--mib", "2", "--repeat", "1",
         "--cases", "0"],
        capture_output=True, text=True, timeout=180, env=clean_env(), cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    row = next(ln for ln in done.stdout.splitlines() if ln.startswith("random, -compress 0"))
    assert len(row.split()) == 9  # name (3 words) + baseline, sp2p, ratio, e2e, ratio, cpu
    assert "load average" in done.stdout

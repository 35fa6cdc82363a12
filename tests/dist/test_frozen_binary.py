"""The PyInstaller single-file binary: runs, is small, and holds everything WebRTC needs."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest

import sp2p

pytestmark = pytest.mark.slow

#: the budget in the spec's comments; bundling PyAV/FFmpeg by accident would blow it
MAX_BYTES = 40 * 1024 * 1024


def test_version(frozen_binary: Path) -> None:
    result = subprocess.run(
        [str(frozen_binary), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sp2p {sp2p.__version__}"


def test_usage_error_is_one_line_not_a_traceback(frozen_binary: Path) -> None:
    result = subprocess.run(
        [str(frozen_binary), "no-such-command"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_self_check_inside_the_binary(frozen_binary: Path) -> None:
    """Every sp2p module imports; crypto, zstd, YAML, ssl, websocket-client and miniupnpc
    work; PyAV is the stub; a real aiortc data channel echoes over 127.0.0.1."""
    result = subprocess.run(
        [str(frozen_binary)], env={**os.environ, "SP2P_FROZEN_SELFCHECK": "1"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "selfcheck: ok"
    assert "ok   av: stub" in lines
    assert "ok   webrtc: data channel echo over 127.0.0.1" in lines
    modules = next(line for line in lines if line.startswith("ok   sp2p modules:"))
    assert int(modules.split(":")[1].split()[0]) >= 10


def test_size_and_cold_start(frozen_binary: Path) -> None:
    """Size is bounded; the cold start is measured and printed, never asserted."""
    size = frozen_binary.stat().st_size
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([str(frozen_binary), "--version"], check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    print(f"\nsp2p binary: {size / 2**20:.1f} MiB, cold start (--version) "
          f"median {statistics.median(runs) * 1000:.0f} ms over {len(runs)} runs")
    assert size <= MAX_BYTES

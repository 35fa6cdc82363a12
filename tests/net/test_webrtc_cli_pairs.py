"""Our CLI over WebRTC against itself and the Go original (pion), as the benches run them
(scripts/webrtc_cli_pairs.py): with the record layer (D1) on our side, larger packets (M1)
only between two of ours, and pion still reading ours and we its."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from webrtc_cli_pairs import GO_CLI, run_pair, sha256_file  # noqa: E402

pytestmark = [pytest.mark.webrtc, pytest.mark.e2e]


@pytest.mark.parametrize("pair", ["ours", "go2ours", "ours2go"])
def test_cli_pair_over_webrtc(pair: str, env: dict[str, str], tmp_path: Path) -> None:
    assert GO_CLI.exists(), "the Go reference CLI is part of the environment"
    src = tmp_path / "random.bin"
    src.write_bytes(os.urandom(6 * 1024 * 1024 + 12345))
    digest = sha256_file(src)
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    run = run_pair(pair, src, digest, env, tmp_path)  # exits non-zero unless SHA-256 matches
    assert run.mbps > 0 and run.cpu_sender > 0 and run.cpu_receiver > 0

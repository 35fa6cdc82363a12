"""Fixtures for tests that run the real CLI against the suite's server: a clean CLI
environment (its own HOME) and an empty output folder. Registered in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import cli_env
from tests.support.server_proc import ServerProc


@pytest.fixture
def env(sp2p_server: ServerProc, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    return cli_env(sp2p_server.http_url, home)


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out

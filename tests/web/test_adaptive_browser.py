"""Adaptive compression (issue 12) in Chromium: a CLI sender whose Data bodies are stored zstd
frames, fast negative-level frames and level 1-11 frames in turn; the page's fzstd decodes them
all and saves what was sent (our receiver: tests/e2e/test_adaptive_compression.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_adaptive_compression import ALL_SETTINGS, mixed_input, used_settings
from tests.support.scripted_cli import MIXED_LEVELS
from tests.web.cli import Cli, browser_download
from tests.web.flows import sha256_file

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc]


def test_browser_decodes_every_setting_in_one_transfer(
    page: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    src = mixed_input(tmp_path / "mixed.bin")
    cli = Cli("send", "-server", web_base, "-compress", "9", str(src),
              entry=("-m", "tests.support.scripted_cli", "--script", MIXED_LEVELS, "--"))
    clis.append(cli)
    saved, seen = browser_download(page, web_base, cli.wait_code(), tmp_path)
    assert seen.startswith("mixed.bin|")
    assert cli.wait(120) == 0, cli.output()
    assert used_settings(cli.output()) == ALL_SETTINGS
    assert sha256_file(saved) == sha256_file(src)

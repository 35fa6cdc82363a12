"""The original Go CLI (../shared/reference/sp2p) <-> our web pages, through our server: what the
page sends in one-message frames and what pion sends arrive byte for byte (SHA-256)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.cli import Cli, browser_download, random_file
from tests.web.flows import sha256_file, start_send, wait_outcome

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc]

GO_CLI = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sp2p"
#: several frames, not a multiple of any chunk size the two sides use
SIZE = 3 * (1 << 20) + 12345


@pytest.fixture
def go_cli() -> str:
    assert GO_CLI.exists(), f"the Go reference CLI is part of the environment: {GO_CLI}"
    return str(GO_CLI)


def test_go_cli_to_browser(page: Any, web_base: str, tmp_path: Path, clis: list[Cli], go_cli: str) -> None:
    src = random_file(tmp_path / "from-go.bin", SIZE)
    cli = Cli("send", "-server", web_base, str(src), program=go_cli)
    clis.append(cli)
    saved, seen = browser_download(page, web_base, cli.wait_code(), tmp_path)
    assert seen.endswith("|from-go.bin")
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)


def test_browser_to_go_cli(page: Any, web_base: str, tmp_path: Path, clis: list[Cli], go_cli: str) -> None:
    src = random_file(tmp_path / "to-go.bin", SIZE)
    url = start_send(page, web_base, str(src))
    out = tmp_path / "out"
    out.mkdir()
    cli = Cli("receive", "-server", web_base, "-output", str(out), url.split("#", 1)[1], program=go_cli)
    clis.append(cli)
    assert cli.wait(120) == 0, cli.output()
    assert wait_outcome(page) == "done"
    assert sha256_file(out / src.name) == sha256_file(src)

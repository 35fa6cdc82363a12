"""Our receive page's Decline button against the original Go CLI sender, through our server
(docs/protocol-extensions.md §3, §5): the Go sender knows no `decline`, hears the receiver
leave right after it (or finds the session closed under its key) and exits 1, and does not hang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.go_server import GO_CLI
from tests.web.cli import Cli, random_file

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_go_sender_hears_the_page_decline_as_a_leave(page: Any, web_base: str, tmp_path: Path,
                                                       clis: list[Cli]) -> None:
    assert GO_CLI.exists(), f"the Go reference CLI is part of the environment: {GO_CLI}"
    src = random_file(tmp_path / "unwanted.bin", 5000)
    cli = Cli("send", "-server", web_base, str(src), program=str(GO_CLI))
    clis.append(cli)
    page.goto(f"{web_base}/r#{cli.wait_code()}")
    page.wait_for_selector("#decline-btn:visible")
    page.click("#decline-btn")
    page.wait_for_selector("#declined:visible")
    assert cli.wait(60) == 1, cli.output()
    # peer-left first, or (about 1 run in 4) the server closing the session's sockets first,
    # so Go's write of its key fails: either way it stops at once
    out = cli.output()
    assert "Receiver disconnected" in out or "sending public key: failed to write msg" in out, out

"""A CLI receiver that declines at the accept question: the browser sender is told (issue 14
item 3), in Chromium, with the receiver on a pseudo-terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import cli_env
from tests.e2e.ptyrun import finish_tty, spawn_tty
from tests.web.browser import new_context
from tests.web.flows import start_send, wait_outcome

pytestmark = pytest.mark.browser


def test_browser_sender_hears_the_decline(chromium: Any, web_base: str, tmp_path: Path) -> None:
    src = tmp_path / "offer.bin"
    src.write_bytes(b"y" * 3000)
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    ctx = new_context(chromium)
    try:
        page = ctx.new_page()
        url = start_send(page, web_base, str(src))
        child = spawn_tty(["receive", "-output", str(tmp_path), url], cli_env(web_base, home))
        child.expect(r"Offer: offer\.bin, 2\.9 KiB, from a browser")
        child.expect(r"Receive it\? \[Y/n\] ")
        child.sendline("n")
        rc, screen = finish_tty(child)
        assert rc == ExitStatus.TRANSFER, screen
        assert wait_outcome(page) == "The receiver declined the transfer."
    finally:
        ctx.close()

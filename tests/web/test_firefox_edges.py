"""The web UI's rough edges in Firefox (ESR over WebDriver BiDi), against the real CLI and server:
an empty file, a code pasted with whitespace, a file gone before it is read, a
server that went away. The Chromium side of each is in test_edges.py (an empty folder only
there: WebDriver BiDi's input.setFiles takes no directories)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sp2p.status import ExitStatus
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server
from tests.web.cli import Cli, browser_download, cli_receive, cli_send, random_file
from tests.web.flows import poll, sha256_file, shot, start_send, wait_outcome

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc]


def advice(page: Any) -> str:
    return page.text_content("#error-detail") or ""


def test_cli_sends_an_empty_file_to_firefox(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    cli, code = cli_send(clis, web_base, src)
    saved, seen = browser_download(firefox_page, web_base, code, tmp_path)
    assert seen == "empty.txt|0 B|empty.txt"
    assert cli.wait(120) == 0, cli.output()
    assert saved.stat().st_size == 0


def test_firefox_takes_a_code_wrapped_across_lines(
    firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    src = random_file(tmp_path / "wrapped.bin", 50_000)
    cli, code = cli_send(clis, web_base, src)
    wrapped = f"%20{code[:12]}%0D%0A{code[12:]}%0A"
    saved, seen = browser_download(firefox_page, web_base, wrapped, tmp_path)
    assert seen.startswith("wrapped.bin|")
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)


def test_firefox_names_a_file_gone_before_it_is_read(
    firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    src = random_file(tmp_path / "moved away.bin", 100_000)
    url = start_send(firefox_page, web_base, str(src))
    src.unlink()
    out = tmp_path / "out"
    out.mkdir()
    cli = cli_receive(clis, web_base, out, url.split("#", 1)[1])
    assert wait_outcome(firefox_page) == (
        "Could not read “moved away.bin”: it was moved, changed or deleted after you chose it."
    )
    assert advice(firefox_page) == "Press Start over and choose it again."
    shot(firefox_page, "firefox-07-unreadable")
    assert cli.wait(120) != 0, cli.output()
    assert list(out.iterdir()) == []  # nothing half-received under the final name


@pytest.fixture
def own_server() -> Iterator[ServerProc]:
    with start_server(*NO_LIMIT_FLAGS) as server:
        yield server


def test_firefox_explains_a_server_gone_away(firefox: Any, own_server: ServerProc, tmp_path: Path) -> None:
    base = own_server.http_url
    src = tmp_path / "x.txt"
    src.write_bytes(os.urandom(100))
    waiting_ctx, later_ctx = firefox.new_context(), firefox.new_context()
    try:
        waiting, later = waiting_ctx.new_page(), later_ctx.new_page()
        start_send(waiting, base, str(src))
        later.goto(base + "/")
        own_server.stop()
        assert wait_outcome(waiting) == "The connection to the sp2p server was lost."
        assert advice(waiting) == "Press Start over to send again; the receiver will need the new link."
        later.set_input_files("#file-input", src)
        assert wait_outcome(later) == "Could not reach the sp2p server."
        assert advice(later) == "Check your internet connection, then reload the page to try again."
    finally:
        waiting_ctx.close()
        later_ctx.close()


def test_firefox_declines_a_cli_offer(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "unwanted.bin", 5000)
    cli, code = cli_send(clis, web_base, src)
    firefox_page.goto(f"{web_base}/r#{code}")
    firefox_page.wait_for_selector("#decline-btn:visible")
    firefox_page.click("#decline-btn")
    firefox_page.wait_for_selector("#declined:visible")
    assert cli.wait(60) == ExitStatus.TRANSFER, cli.output()
    assert "declined" in cli.output()


def test_firefox_sender_closing_mid_transfer_leaves_the_cli_nothing(
    firefox: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        f.truncate(300 << 20)
    out = tmp_path / "out"
    out.mkdir()
    ctx = firefox.new_context()
    try:
        page = ctx.new_page()
        url = start_send(page, web_base, str(src))
        cli = cli_receive(clis, web_base, out, url.split("#", 1)[1])
        poll(page, "() => document.querySelector('#progress-bar').value > 0", 60)
    finally:
        ctx.close()  # the tab goes away mid-transfer
    assert cli.wait(60) == ExitStatus.TRANSFER, cli.output()
    assert list(out.iterdir()) == []  # nothing under the final name, no partial left

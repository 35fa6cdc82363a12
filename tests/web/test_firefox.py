"""The web UI in Firefox (Debian firefox-esr over WebDriver BiDi) against the real CLI and server.

Firefox has no File System Access API, so what it receives always goes through the service-worker
streamed download (static/sw.js); these tests check the saved bytes against the source.
Screenshots: test-artifacts/web/firefox-*.png.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.web.cli import Cli, browser_download, cli_receive, cli_send, make_tree, random_file
from tests.web.flows import (
    NO_PICKERS,
    WRONG_CODE_ADVICE,
    sha256_file,
    shot,
    start_send,
    tree_hashes,
    wait_outcome,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc]



def tar_hashes(path: Path) -> dict[str, str]:
    """{member path: sha256} for files and {dir/: ""} for directories of a tar file."""
    out: dict[str, str] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            name = member.name.rstrip("/")
            if member.isdir():
                out[name + "/"] = ""
            elif member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_firefox_is_what_runs(
    firefox: Any, firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    """The pages really run in Firefox, without File System Access, with a service worker."""
    # A real waiting sender: the page says at once that an unknown code is unknown.
    _cli, code = cli_send(clis, web_base, random_file(tmp_path / "probe.bin", 1024))
    firefox_page.goto(f"{web_base}/r#{code}")
    firefox_page.wait_for_selector("#save-btn:visible")
    ua, picker, controlled = firefox_page.evaluate(
        "() => [navigator.userAgent, typeof window.showSaveFilePicker, !!navigator.serviceWorker.controller]"
    )
    assert "Firefox/" in ua and firefox.version.split(".")[0] in ua
    assert picker == "undefined"
    assert controlled is True
    assert not firefox_page.is_visible("#extract-btn")  # needs showDirectoryPicker


def test_cli_to_firefox_1mib(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "one-mib.bin", 1 << 20)
    cli, code = cli_send(clis, web_base, src)
    saved, seen = browser_download(firefox_page, web_base, code, tmp_path, shots="firefox-01-cli-to-firefox")
    assert seen == "one-mib.bin|1.0 MiB|one-mib.bin"
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)


def test_cli_folder_to_firefox_as_tar(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    top = make_tree(tmp_path)
    cli, code = cli_send(clis, web_base, top)
    saved, seen = browser_download(firefox_page, web_base, code, tmp_path, shots="firefox-02-folder")
    name, _size, download_name = seen.split("|")
    assert (name, download_name) == ("project", "project.tar")
    assert cli.wait(120) == 0, cli.output()
    assert tar_hashes(saved) == {f"project/{k}": v for k, v in tree_hashes(top).items()}


def test_firefox_to_cli_file(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "from-firefox.bin", 3 * (1 << 20) + 12345)
    url = start_send(firefox_page, web_base, str(src))
    shot(firefox_page, "firefox-03-send-share")
    out = tmp_path / "out"
    out.mkdir()
    cli = cli_receive(clis, web_base, out, url.split("#", 1)[1])
    assert cli.wait(120) == 0, cli.output()
    assert wait_outcome(firefox_page) == "done"
    shot(firefox_page, "firefox-04-send-done")
    assert sha256_file(out / src.name) == sha256_file(src)


def test_firefox_wrong_code(firefox_page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    """A mistyped link: the preview does not open with it, so the page refuses before the join
    and the CLI sender's code still works afterwards."""
    src = random_file(tmp_path / "secret.bin", 5000)
    cli, code = cli_send(clis, web_base, src)
    session_id, seed = code.split("-", 1)
    wrong = seed[:-1] + ("A" if seed[-1] != "A" else "B")
    page = firefox_page
    page.add_init_script(NO_PICKERS)
    page.goto(f"{web_base}/r#{session_id}-{wrong}")
    error = wait_outcome(page)
    shot(page, "firefox-06-wrong-code-error")
    assert error == "This code does not open the sender's file details: it looks cut off or mistyped.", error
    assert page.text_content("#error-detail") == WRONG_CODE_ADVICE
    assert page.is_hidden("#confirm")
    assert cli.proc.poll() is None, cli.output()  # still waiting for its receiver
    saved, _ = browser_download(page, web_base, code, tmp_path)
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)

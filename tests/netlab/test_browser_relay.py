"""The browser's TURN relay fallback, for real: Chromium behind one symmetric NAT, the CLI
behind another, sp2p-server and coturn on the public segment. No direct path exists, so the
first WebRTC attempt fails (the browser gives up after 15 s), both sides ask for the relay,
and the transfer either crosses coturn (consent given in the page's relay dialog) or ends
with a clear error on both sides (consent refused).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netlab import Lab, Nat
from tests.netlab.browser_ns import NsBrowser
from tests.netlab.fixtures import require_netlab
from tests.netlab.test_scenarios import _transport, _wait_code
from tests.web.browser import chromium_path
from tests.web.flows import CODE_RE, NO_PICKERS, PageWatch, shot, start_send, wait_outcome

pytestmark = [pytest.mark.netns, pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSER_HOST, CLI_HOST = "h2", "h1"
#: first attempt (15 s) + relay handshake + second attempt + transfer, with room to spare
FLOW_TIMEOUT = 90.0


@dataclass
class RelayLab:
    lab: Lab
    base: str  # http://10.201.0.100:8080
    browser: NsBrowser


@pytest.fixture(scope="module")
def relay_lab() -> Iterator[RelayLab]:
    """Both NATs symmetric, coturn + sp2p-server (TURN REST secret) in pub, Chromium in h2."""
    require_netlab()
    chromium_path()
    lab = Lab.create(Nat.SYMMETRIC, Nat.SYMMETRIC)
    try:
        coturn = lab.start_coturn()
        server = lab.start_server(
            extra_args=[
                "-turn-servers",
                f"{coturn.stun_url},{coturn.turn_url}",
                "-turn-secret",
                coturn.secret,
            ]
        )
        browser = NsBrowser(lab, BROWSER_HOST, (server.url,))
        try:
            yield RelayLab(lab, server.url, browser)
        finally:
            browser.close()
    finally:
        lab.close()


def run_cli(lab: Lab, tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    """`sp2p ARGS` in CLI_HOST against the lab's server, without a terminal (no relay prompt)."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "SP2P_SERVER": f"http://{lab.ip('pub')}:8080",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    return lab.run(CLI_HOST, [sys.executable, "-m", "sp2p", *args], env=env, name=f"cli-{tmp.name}",
                   start_new_session=True)  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ page steps (browser thread)


def p2p_detail(page: Any) -> str:
    return page.text_content('[data-step="p2p"] .step-detail') or ""


def answer_relay_dialog(page: Any, allow: bool) -> None:
    """Wait out the direct attempt until the page asks about the relay, then answer."""
    page.wait_for_selector("#relay-dialog:visible, #error:visible", timeout=60_000)
    if page.is_visible("#error"):
        raise AssertionError(f"page failed before asking about the relay: {page.text_content('#error-text')}")
    assert "TURN relay" in (page.text_content("#relay-text") or "")
    page.click("#relay-dialog [data-answer=yes]" if allow else "#relay-dialog [data-answer=no]")


def browser_receive(browser: Any, base: str, code: str, allow: bool, dest: Path, name: str) -> dict[str, Any]:
    from tests.web.browser import new_context

    ctx = new_context(browser)
    try:
        page = ctx.new_page()
        watch = PageWatch(page)
        page.add_init_script(NO_PICKERS)  # the service-worker download, as in browsers without pickers
        downloads: list[Any] = []
        page.on("download", lambda d: downloads.append(d))
        page.goto(f"{base}/r#{code}")
        page.wait_for_selector("#save-btn:visible", timeout=30_000)
        page.click("#save-btn")
        answer_relay_dialog(page, allow)
        outcome = wait_outcome(page, timeout_ms=int(FLOW_TIMEOUT * 1000))
        shot(page, f"netlab-{name}")
        saved = None
        if downloads:
            saved = dest / "downloaded"
            downloads[0].save_as(saved)
        return {"outcome": outcome, "transport": p2p_detail(page), "saved": saved, "errors": watch.errors,
                "downloads": len(downloads)}  # fmt: skip
    finally:
        ctx.close()


class BrowserSend:
    """The send page in its own context; each method runs on the browser's thread."""

    def __init__(self, browser: Any) -> None:
        from tests.web.browser import new_context

        self.ctx = new_context(browser)
        self.page = self.ctx.new_page()
        self.watch = PageWatch(self.page)

    def share(self, base: str, src: Path) -> str:
        url = start_send(self.page, base, str(src))
        match = CODE_RE.search(url)
        assert match is not None, url
        return match.group(0)

    def finish(self, allow: bool, name: str) -> dict[str, Any]:
        try:
            answer_relay_dialog(self.page, allow)
            outcome = wait_outcome(self.page, timeout_ms=int(FLOW_TIMEOUT * 1000))
            shot(self.page, f"netlab-{name}")
            return {"outcome": outcome, "transport": p2p_detail(self.page), "errors": self.watch.errors}
        finally:
            self.ctx.close()


# ------------------------------------------------------------------ tests


def test_cli_to_browser_via_relay(relay_lab: RelayLab, tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(1 << 20))
    cli = run_cli(relay_lab.lab, tmp_path, "send", "-allow-relay", str(src))
    code = _wait_code(relay_lab.lab, cli)
    got = relay_lab.browser.run(browser_receive, relay_lab.browser.browser, relay_lab.base, code, True, tmp_path,
                                "relay-cli-to-browser", timeout=FLOW_TIMEOUT + 30)  # fmt: skip
    rc = cli.wait(30)
    out = relay_lab.lab.output_of(cli)
    assert got["outcome"] == "done", (got, out)
    assert rc == 0, out
    assert _transport(out) == "WebRTC (relay)", out
    assert got["transport"] == "via WebRTC (relay)", got
    assert got["saved"] is not None and sha256(got["saved"]) == sha256(src)
    assert not got["errors"], got["errors"]


def test_browser_refusing_relay_fails_cleanly_on_both_sides(relay_lab: RelayLab, tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(64 << 10))
    cli = run_cli(relay_lab.lab, tmp_path, "send", "-allow-relay", str(src))
    code = _wait_code(relay_lab.lab, cli)
    got = relay_lab.browser.run(browser_receive, relay_lab.browser.browser, relay_lab.base, code, False, tmp_path,
                                "relay-refused", timeout=FLOW_TIMEOUT + 30)  # fmt: skip
    rc = cli.wait(60)
    out = relay_lab.lab.output_of(cli)
    assert "relay" in got["outcome"].lower() and got["outcome"] != "done", got
    assert got["downloads"] == 0 and got["saved"] is None, got
    assert rc != 0, out
    assert "peer declined the relay" in out, out
    assert "Traceback" not in out, out


def test_browser_to_cli_via_relay(relay_lab: RelayLab, tmp_path: Path) -> None:
    src = tmp_path / "from-browser.bin"
    src.write_bytes(os.urandom(1 << 20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run = relay_lab.browser.run
    sender = run(BrowserSend, relay_lab.browser.browser)
    code = run(sender.share, relay_lab.base, src)
    cli = run_cli(relay_lab.lab, tmp_path, "receive", "-allow-relay", "-output", str(out_dir), code)
    got = run(sender.finish, True, "relay-browser-to-cli", timeout=FLOW_TIMEOUT + 30)
    rc = cli.wait(30)
    out = relay_lab.lab.output_of(cli)
    assert got["outcome"] == "done", (got, out)
    assert rc == 0, out
    assert _transport(out) == "WebRTC (relay)", out
    assert got["transport"] == "via WebRTC (relay)", got
    received = out_dir / src.name
    assert received.is_file() and sha256(received) == sha256(src), out
    assert not got["errors"], got["errors"]

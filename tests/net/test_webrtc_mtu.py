"""M2 of docs/webrtc-tuning.md: on a path with a 1500-byte MTU (a netns whose addresses
route over a loopback set to 1500), two WebRTCPeers probe for 8 KiB and 1412-byte SCTP
packets at once; the 8 KiB probe is refused (don't-fragment), the smaller one comes back,
and the data then moves in 1384-byte chunks, every byte intact. M3 likewise: a browser on such
a path settles on the 1412-byte probe."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sp2p.net.webrtc_sctp_mtu import ETHERNET_PACKET, data_size
from tests.net.webrtc_netns import shaped_netns, transfer_in
from tests.netlab.browser_ns import NsBrowser
from tests.netlab.cli_output import wait_code
from tests.support.files import sha256_file
from tests.web.browser import chromium_path, new_context
from tests.web.cli import browser_download
from tests.web.flows import PageWatch
from tests.web.test_cli_interop import TRANSPORT_STATS

pytestmark = [pytest.mark.webrtc, pytest.mark.netns]


def page_state(page: Any, watch: PageWatch) -> str:
    """What a receive page shows (its status line, an error) and the errors it logged."""
    shown = page.evaluate(
        "() => ['#loading', '#error-text', '#error-detail', '#confirm-file']"
        ".map((s) => document.querySelector(s)).filter((e) => e && !e.closest('[hidden]'))"
        ".map((e) => '#' + e.id + ': ' + e.textContent)"
    )
    return "the page showed: " + ("; ".join(shown) or "nothing") + "".join(f"\n{e}" for e in watch.errors)


def test_a_1500_byte_path_gets_the_larger_ethernet_packets() -> None:
    with shaped_netns(mtu=1500) as ns:
        result = transfer_in(ns, 8)
    assert result["match"] and result["reply"] == "ok"
    assert result["chunk_size"] == data_size(ETHERNET_PACKET) == 1384


@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.slow
def test_a_browser_on_a_1500_byte_path_gets_the_ethernet_packets(netlab: Any, tmp_path: Path) -> None:
    """M3 on a real path: Chromium in h2, the CLI in h1, both on the lab's LAN (veth + bridge,
    MTU 1500). The 2048-byte browser probe cannot cross, the 1412-byte one comes back: the CLI
    sends 1412-byte SCTP packets (1449-byte datagrams), neither 2048 (2085) nor stock 1200."""
    chromium_path()
    lab = netlab(same_lan=True)
    server = lab.start_server()
    src = tmp_path / "packets.bin"
    src.write_bytes(os.urandom(8 << 20))
    home = tmp_path / "home"
    home.mkdir()
    env = {"SP2P_SERVER": server.url, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    cli = lab.run("h1", [sys.executable, "-m", "sp2p", "send", str(src)], env=env, name="cli-send",
                  start_new_session=True)  # fmt: skip
    browser = NsBrowser(lab, "h2", (server.url,))
    try:

        def receive(code: str) -> tuple[Path, list[int]]:
            ctx = new_context(browser.browser)
            try:
                page = ctx.new_page()
                watch = PageWatch(page)
                page.add_init_script(TRANSPORT_STATS)
                try:
                    saved, _ = browser_download(page, server.url, code, tmp_path)
                except Exception as exc:  # a wait timed out: say what the page showed instead
                    raise AssertionError(f"{exc}\n{page_state(page, watch)}\n{lab.output_of(cli)}") from None
                return saved, page.evaluate("window.__sp2pTransport")
            finally:
                ctx.close()

        saved, (packets, size) = browser.run(receive, wait_code(lab, cli), timeout=180)
    finally:
        browser.close()
    assert cli.wait(60) == 0, lab.output_of(cli)
    assert sha256_file(saved) == sha256_file(src)
    assert packets > 1000, packets
    average = size / packets  # DTLS datagrams: the SCTP packet plus 37 bytes
    assert ETHERNET_PACKET + 37 - 30 < average <= ETHERNET_PACKET + 37, average

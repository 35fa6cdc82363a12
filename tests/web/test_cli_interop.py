"""CLI <-> browser through the real server: the SHA-256 of what was saved equals the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sp2p.proto.constants import FRAME_OVERHEAD, MAX_DC_MESSAGE
from tests.web.cli import Cli, browser_download, cli_send, make_tree, random_file
from tests.web.flows import (
    OPFS_PICKERS,
    OPFS_TREE,
    sha256_file,
    shot,
    start_send,
    tree_hashes,
    wait_outcome,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc]



def test_cli_to_browser_1mib(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "one-mib.bin", 1 << 20)
    cli, code = cli_send(clis, web_base, src)
    saved, seen = browser_download(page, web_base, code, tmp_path)
    assert seen == "one-mib.bin|1.0 MiB|one-mib.bin"
    shot(page, "cli-01-to-browser-done")
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)


#: records every data-channel message the page receives: (length, first 4 bytes as u32 BE)
MESSAGE_LOG = """
window.__sp2pMessages = [];
const addListener = RTCDataChannel.prototype.addEventListener;
RTCDataChannel.prototype.addEventListener = function (type, listener, options) {
  if (type === "message") {
    const inner = listener;
    listener = function (e) {
      if (typeof e.data !== "string") {
        const v = new DataView(e.data);
        window.__sp2pMessages.push([v.byteLength, v.byteLength >= 4 ? v.getUint32(0) : -1]);
      }
      return inner.call(this, e);
    };
  }
  return addListener.call(this, type, listener, options);
};
"""


def test_cli_sends_one_frame_per_message(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    """A full chunk's frame would be 29 bytes over the 256 KiB message limit: the CLI sizes its
    chunks so each frame is exactly one message, which the page reads without joining pieces."""
    src = random_file(tmp_path / "framed.bin", 3 * (1 << 20) + 12345)
    cli, code = cli_send(clis, web_base, src)
    page.add_init_script(MESSAGE_LOG)
    saved, _ = browser_download(page, web_base, code, tmp_path)
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)
    messages = page.evaluate("window.__sp2pMessages")
    assert messages[0][0] == 32  # the key-confirmation MAC, a message of its own
    frames = messages[1:]
    assert all(length == 4 + declared for length, declared in frames), frames
    assert max(length for length, _ in frames) == MAX_DC_MESSAGE  # as large as the limit allows
    assert sum(length - FRAME_OVERHEAD for length, _ in frames) >= src.stat().st_size  # all the data


@pytest.mark.slow
def test_cli_to_browser_300mib(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "big.bin", 300 << 20)
    cli, code = cli_send(clis, web_base, src)
    saved, seen = browser_download(page, web_base, code, tmp_path)
    assert seen == "big.bin|300.0 MiB|big.bin"
    assert cli.wait(300) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)


def test_cli_folder_to_browser_extract(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    top = make_tree(tmp_path)
    cli, code = cli_send(clis, web_base, top)
    page.add_init_script(OPFS_PICKERS)
    page.goto(f"{web_base}/r#{code}")
    page.wait_for_selector("#extract-btn:visible", timeout=60_000)
    assert page.text_content("#confirm-file") == "project"
    page.click("#extract-btn")
    outcome = wait_outcome(page)
    assert outcome == "done", f"{outcome}\n{cli.output()}"  # the sender says where it stopped
    assert cli.wait(120) == 0, cli.output()
    got = page.evaluate(OPFS_TREE, "extract")
    want = {f"project/{k}": v for k, v in tree_hashes(top).items()}
    want["project/"] = ""
    assert got == want


def test_browser_to_cli_file(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    src = random_file(tmp_path / "from-browser.bin", 3 * (1 << 20) + 12345)
    url = start_send(page, web_base, str(src))
    out = tmp_path / "out"
    out.mkdir()
    cli = Cli("receive", "-server", web_base, "-output", str(out), url.split("#", 1)[1])
    clis.append(cli)
    assert cli.wait(120) == 0, cli.output()
    assert wait_outcome(page) == "done"
    shot(page, "cli-02-browser-to-cli-done")
    assert sha256_file(out / src.name) == sha256_file(src)


def test_browser_to_cli_folder(page: Any, web_base: str, tmp_path: Path, clis: list[Cli]) -> None:
    top = make_tree(tmp_path)
    (top / "empty").rmdir()  # a folder <input> lists files only
    url = start_send(page, web_base, str(top), folder=True)
    out = tmp_path / "out"
    out.mkdir()
    cli = Cli("receive", "-server", web_base, "-output", str(out), url.split("#", 1)[1])
    clis.append(cli)
    assert cli.wait(120) == 0, cli.output()
    assert wait_outcome(page) == "done"
    assert tree_hashes(out / "project") == tree_hashes(top)


#: keeps every peer connection's latest transport stats: (packets, bytes) received
TRANSPORT_STATS = """
window.__sp2pTransport = [0, 0];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) {
    super(...args);
    const timer = setInterval(async () => {
      if (this.connectionState === "closed") return clearInterval(timer);
      for (const r of (await this.getStats()).values()) {
        if (r.type === "transport" && r.packetsReceived > window.__sp2pTransport[0]) {
          window.__sp2pTransport = [r.packetsReceived, r.bytesReceived];
        }
      }
    }, 50);
  }
};
"""


@pytest.mark.parametrize("probe", [True, False], ids=["probed", "no-probe"])
def test_cli_sends_larger_packets_once_the_browser_probe_came_back(
    page: Any, web_base: str, tmp_path: Path, clis: list[Cli], probe: bool
) -> None:
    """M3 of docs/webrtc-tuning.md: a padded HEARTBEAT of 2048 bytes reaches Chromium and its
    (small) answer switches the CLI to 2020-byte chunks; without the probe they stay 1160."""
    src = random_file(tmp_path / "packets.bin", 8 << 20)
    cli = Cli("send", "-server", web_base, str(src), env_extra={} if probe else {"SP2P_WEBRTC_NO_JUMBO": "1"})
    clis.append(cli)
    page.add_init_script(TRANSPORT_STATS)
    saved, _ = browser_download(page, web_base, cli.wait_code(), tmp_path)
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)
    packets, size = page.evaluate("window.__sp2pTransport")
    assert packets > 1000, packets
    average = size / packets  # DTLS datagrams: the SCTP packet plus 37 bytes
    assert (average > 1900) if probe else (average < 1300), average

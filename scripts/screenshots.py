"""Screenshots for docs/screenshots/: a real send and receive in the terminal and in the browser.

The terminals are real pseudo-terminals (pexpect); what the CLI wrote is replayed through a
VT100 emulator (pyte) and drawn as HTML, which Chromium renders to PNG, as it does the pages.
Everything runs against a real sp2p-server on 127.0.0.1.

    flock /tmp/browser.lock python3 scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pexpect
import pyte

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.web.browser import launch, new_context  # noqa: E402

COLS, ROWS = 112, 60
_LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")
_COLORS = {"black": "#1e1e1e", "white": "#f0f0f0", "default": ""}
_CSS = """
body { margin: 0; background: #1e1e1e; }
pre { margin: 0; padding: 14px 18px; font: 14px/1.17 'DejaVu Sans Mono', monospace; color: #d8d8d8;
      background: #1e1e1e; display: inline-block; }
.t { color: #8a8a8a; }
"""


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "server", "-addr", "127.0.0.1:0"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        match = _LISTENING.search(raw.decode(errors="replace"))
        if match:
            return proc, match.group(1)
    raise RuntimeError("the server did not start")


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "sp2p", *args], env=env, cwd=str(cwd), timeout=60,
                         dimensions=(ROWS, COLS))


class Capture:
    """Everything a pseudo-terminal showed, for replay through the emulator."""

    def __init__(self, child: pexpect.spawn, prompt: str) -> None:
        self.child = child
        self.data = prompt.encode()
        child.logfile_read = self  # type: ignore[assignment]

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


def screen_html(data: bytes, title: str) -> str:
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    rows = []
    for y in range(screen.lines):
        line = screen.buffer[y]
        cells = []
        for x in range(screen.columns):
            ch = line[x]
            fg, bg = _COLORS.get(ch.fg, ""), _COLORS.get(ch.bg, "")
            text = html.escape(ch.data)
            if fg or bg:
                style = (f"color:{fg};" if fg else "") + (f"background:{bg};" if bg else "")
                text = f'<span style="{style}">{text}</span>'
            cells.append(text)
        rows.append("".join(cells).rstrip())
    while rows and not rows[-1]:
        rows.pop()
    body = "\n".join(rows)
    return (f"<!doctype html><meta charset=utf-8><style>{_CSS}</style>"
            f'<pre><span class="t">{html.escape(title)}</span>\n{body}</pre>')


def render(page: Any, markup: str, path: Path) -> None:
    page.set_content(markup)
    page.locator("pre").screenshot(path=str(path))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="sp2p-shots-"))
    (tmp / "home" / ".config").mkdir(parents=True)
    (tmp / "send").mkdir()
    (tmp / "Downloads").mkdir()
    (tmp / "send" / "report.pdf").write_bytes(os.urandom(2_202_010))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    env = {**base_env, "PYTHONPATH": str(REPO), "HOME": str(tmp / "home"), "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp / "home" / ".config"), "SP2P_ALLOW_LOOPBACK": "1",
           "SP2P_STATIC_DIR": str(REPO / "static")}
    server, base = start_server(env)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = launch(p)
            shots = new_context(browser, viewport={"width": 900, "height": 700}).new_page()
            # -- terminal: send, with the QR code toggled on while waiting
            sender = spawn(["send", "-server", base, "report.pdf"], env, tmp / "send")
            send_cap = Capture(sender, f"$ sp2p send -server {base} report.pdf\n")
            sender.expect(r"Terminal:\s+(sp2p receive [^\r\n]+)")
            command = sender.match.group(1).decode().strip()
            sender.expect("Waiting for receiver")
            sender.send("q")
            sender.expect(r"press q to hide\)")
            render(shots, screen_html(send_cap.data, "sender, q pressed while waiting"),
                   args.out / "cli-send-qr.png")
            sender.send("q")
            sender.expect(r"\x1b\[J")
            # -- terminal: receive with the printed command, answer the question
            receiver = spawn(command.split()[1:], env, tmp / "Downloads")
            recv_cap = Capture(receiver, f"$ {command}\n")
            receiver.expect(r"Receive it\? \[Y/n\] ")
            receiver.sendline("y")
            receiver.expect(pexpect.EOF)
            sender.expect(pexpect.EOF)
            render(shots, screen_html(send_cap.data, "sender"), args.out / "cli-send.png")
            render(shots, screen_html(recv_cap.data, "receiver"), args.out / "cli-receive.png")
            # -- browser: the send page's share card, the receive page's card, an expired link
            ctx = new_context(browser, viewport={"width": 900, "height": 900})
            page = ctx.new_page()
            page.goto(base + "/")
            page.set_input_files("#file-input", str(tmp / "send" / "report.pdf"))
            page.wait_for_selector("#share-url:not(:empty)")
            url = page.text_content("#share-url") or ""
            page.screenshot(path=str(args.out / "web-send.png"), full_page=True)
            rctx = new_context(browser, viewport={"width": 900, "height": 700})
            rpage = rctx.new_page()
            rpage.goto(url)
            rpage.wait_for_selector("#save-btn:visible")
            rpage.screenshot(path=str(args.out / "web-receive.png"), full_page=True)
            rpage.goto(base + "/r#zzzzzzzz-SYW7RiJxkEgOGusQGwp")
            rpage.wait_for_selector("#error:visible")
            rpage.screenshot(path=str(args.out / "web-expired.png"), full_page=True)
            ctx.close()
            rctx.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    for png in sorted(args.out.glob("*.png")):
        print(f"{png.relative_to(REPO) if png.is_relative_to(REPO) else png}: {png.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Page-level helpers shared by the browser tests: drive the send and receive pages, save what
arrives, hash it, keep screenshots."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from sp2p.proto.codes import CODE_PATTERN
from tests.support.files import sha256_file as sha256_file
from tests.web.browser import ARTIFACTS

WIRE_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "wire.js"

CODE_RE = CODE_PATTERN
#: what the receive page advises when the sender's preview does not open with the code
WRONG_CODE_ADVICE = (
    "Copy the whole link again (the sender is still waiting); if it is exactly what the sender "
    "shows, the server is serving wrong file details."
)
TIMEOUT_MS = 120_000

#: Headless Chromium aborts the real pickers at once (RECIPES-components.md §3), so tests that
#: exercise the File System Access paths back the pickers with the origin-private file system:
#: real FileSystemHandles, real streaming writes to disk. `__sp2pPicked` records the calls.
OPFS_PICKERS = """
(() => {
  window.__sp2pPicked = [];
  const root = () => navigator.storage.getDirectory();
  window.showSaveFilePicker = async (opts = {}) => {
    window.__sp2pPicked.push(['file', opts.suggestedName]);
    const dir = await (await root()).getDirectoryHandle('saved', { create: true });
    return dir.getFileHandle(opts.suggestedName || 'file', { create: true });
  };
  window.showDirectoryPicker = async () => {
    window.__sp2pPicked.push(['dir']);
    return (await root()).getDirectoryHandle('extract', { create: true });
  };
})();
"""

#: Force the service-worker download path (as in browsers without File System Access).
NO_PICKERS = "delete window.showSaveFilePicker; delete window.showDirectoryPicker;"

#: sha256 (hex) of every file under an OPFS directory, keyed by relative path; dirs end in "/".
OPFS_TREE = """
async (dirName) => {
  const out = {};
  const walk = async (dir, prefix) => {
    for await (const [name, h] of dir.entries()) {
      const p = prefix + name;
      if (h.kind === 'directory') { out[p + '/'] = ''; await walk(h, p + '/'); }
      else {
        const buf = await (await h.getFile()).arrayBuffer();
        const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
        out[p] = Array.from(d, b => b.toString(16).padStart(2, '0')).join('');
      }
    }
  };
  const root = await navigator.storage.getDirectory();
  await walk(await root.getDirectoryHandle(dirName, { create: true }), '');
  return out;
}
"""


def poll(page: Any, js_function: str, timeout_s: float = 120.0) -> Any:
    """Evaluate `js_function` until it returns something truthy (wait_for_function uses eval,
    which the pages' CSP forbids)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(js_function)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met: {js_function}")
        page.wait_for_timeout(100)


def tree_hashes(root: Path) -> dict[str, str]:
    """{relative path: sha256} for files and {dir/: ""} for directories under root."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel + "/" if p.is_dir() else rel] = "" if p.is_dir() else sha256_file(p)
    return out


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


#: console errors the browser itself prints for outcomes a test expects: a preview that is not
#: there (404) and a WebSocket to a server that is down. Our code never logs.
EXPECTED_CONSOLE = re.compile(
    r"Failed to load resource: the server responded with a status of 404|WebSocket connection to .* failed"
)


class PageWatch:
    """Collects page errors, CSP violations and dialogs of one page; with `console`, also every
    console error but EXPECTED_CONSOLE's and every unhandled promise rejection."""

    def __init__(self, page: Any, *, console: bool = False) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => "
            "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
            "window.addEventListener('unhandledrejection', e => "
            "console.error('unhandled rejection: ' + (e.reason && e.reason.stack || e.reason)));"
        )

        def on_console(m: Any) -> None:
            always = "CSP violation" in m.text or "unhandled rejection" in m.text
            if m.type == "error" and (always or (console and not EXPECTED_CONSOLE.search(m.text))):
                self.errors.append(f"console: {m.text}")

        page.on("console", on_console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def start_send(page: Any, base: str, files: Any, *, folder: bool = False) -> str:
    """Open the send page, pick `files` (paths or payloads), return the share URL."""
    page.goto(base + "/")
    page.set_input_files("#folder-input" if folder else "#file-input", files)
    page.wait_for_selector("#share-url:not(:empty)", timeout=TIMEOUT_MS)
    url: str = page.text_content("#share-url") or ""
    return url


def wait_outcome(page: Any, timeout_ms: int = TIMEOUT_MS) -> str:
    """Wait until the page shows done or an error; return "done" or the error text."""
    page.wait_for_selector("#done:visible, #error:visible", timeout=timeout_ms)
    if page.is_visible("#done"):
        return "done"
    return page.text_content("#error-text") or "error"


def receive_download(page: Any, url: str, dest: Path) -> tuple[Path, str]:
    """Open the link, confirm, and save the service-worker download to dest/<suggested name>."""
    page.goto(url)
    page.wait_for_selector("#save-btn:visible", timeout=TIMEOUT_MS)
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.click("#save-btn")
    download = info.value
    target = dest / download.suggested_filename
    download.save_as(target)
    return target, download.suggested_filename


#: both pages' liveness scaled down as in the CLI tests (tests/support/scripted_cli.py): a heartbeat
#: every 1 s, a silent peer dead after 3 s (static/js/wire.js ships 5 s and 15 s); the rule is the same
SCALED_LIVENESS = {
    "HEARTBEAT_INTERVAL_MS = 5000;": "HEARTBEAT_INTERVAL_MS = 1000;",
    "HEARTBEAT_DEAD_AFTER_MS = 15000;": "HEARTBEAT_DEAD_AFTER_MS = 3000;",
}


def _scaled_wire(route: Any) -> None:
    response = route.fetch()
    body = response.text()
    for shipped, scaled in SCALED_LIVENESS.items():
        body = body.replace(shipped, scaled)
    route.fulfill(response=response, body=body)


def scale_liveness(page: Any) -> None:
    """Serve the pages of `page`'s context a wire.js with SCALED_LIVENESS's timings (a test-only
    route: the shipped file is unchanged)."""
    assert all(shipped in WIRE_JS.read_text() for shipped in SCALED_LIVENESS), "wire.js changed its timings"
    page.context.route("**/static/js/wire.js", _scaled_wire)


def start_big_transfer(sender: Any, receiver: Any, base: str, tmp_path: Path) -> Path:
    """Send a 200 MiB (sparse) large.bin from `sender` to `receiver` (which saves it whichever way
    its init scripts allow) and return its path once the receiver's progress bar has moved: for
    tests that end a transfer midway."""
    src = tmp_path / "large.bin"
    with src.open("wb") as f:
        f.truncate(200 << 20)
    url = start_send(sender, base, str(src))
    receiver.goto(url)
    receiver.click("#save-btn")
    poll(receiver, "() => document.querySelector('#progress-bar').value > 0")
    return src

"""Firefox pages that quack like Playwright's, over WebDriver BiDi (tests/web/bidi.py).

Only the part of Playwright's sync API the web tests use: browser.new_context(), context.new_page()
and .close(); page.goto, evaluate, add_init_script, wait_for_selector (with Playwright's
`:visible`), text_content, get_attribute, is_visible, click (real pointer input), set_input_files,
screenshot, on("pageerror"|"console"|"dialog"|"download"), expect_download, wait_for_timeout.
So tests/web/flows.py drives Chromium and Firefox alike.

A context is a BiDi user context (own cookies, storage and service workers, like a Playwright
context). Downloads land in a per-browser folder set with browser.setDownloadBehavior; a
Download answers suggested_filename at once and save_as() once Firefox reports it complete.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.web.bidi import BidiError, FirefoxProcess
from tests.web.firefox_events import ConsoleMessage, Dialog, Download, ExpectedDownload, PageError

DEFAULT_TIMEOUT_MS = 30_000
_FUNCTION = re.compile(r"^\s*(async\s+)?(function\b|\([^()]*\)\s*=>|[\w$]+\s*=>)")

#: Resolves a selector list where a part may end in Playwright's `:visible`; with `visible`
#: set, only elements that render count. Returns the first match or null.
_PICK = """
(selector, mustBeVisible) => {
  const shown = (el) => el.checkVisibility({ visibilityProperty: true }) && el.getClientRects().length > 0;
  for (const raw of selector.split(',')) {
    let part = raw.trim();
    let visible = mustBeVisible;
    if (part.endsWith(':visible')) { part = part.slice(0, -':visible'.length); visible = true; }
    for (const el of document.querySelectorAll(part)) if (!visible || shown(el)) return el;
  }
  return null;
}
"""


class FirefoxPage:
    def __init__(self, browser: FirefoxBrowser, context_id: str) -> None:
        self.browser = browser
        self.bidi = browser.bidi
        self.id = context_id
        self._handlers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)

    # -- events ---------------------------------------------------------------------------------
    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self._handlers[event].append(handler)

    def remove_listener(self, event: str, handler: Callable[[Any], None]) -> None:
        if handler in self._handlers[event]:
            self._handlers[event].remove(handler)

    def _emit(self, event: str, value: Any) -> bool:
        handlers = list(self._handlers.get(event, ()))
        for handler in handlers:
            handler(value)
        return bool(handlers)

    @contextlib.contextmanager
    def expect_download(self, timeout: float = DEFAULT_TIMEOUT_MS) -> Iterator[ExpectedDownload]:
        expected = ExpectedDownload(timeout)
        self.on("download", expected.resolve)
        try:
            yield expected
            _ = expected.value
        finally:
            self.remove_listener("download", expected.resolve)

    # -- navigation and scripts -----------------------------------------------------------------
    def goto(self, url: str, timeout: float = DEFAULT_TIMEOUT_MS) -> None:
        self.bidi.send("browsingContext.navigate", {"context": self.id, "url": url, "wait": "complete"},
                       timeout=timeout / 1000)

    def add_init_script(self, script: str) -> None:
        self.bidi.send("script.addPreloadScript",
                       {"functionDeclaration": "() => {\n" + script + "\n}", "contexts": [self.id]})

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Playwright's rule: a function is called (with `arg` if given), anything else is an
        expression. Values cross as JSON."""
        if _FUNCTION.match(expression):
            args = [] if arg is None else [arg]
            decl = f"async (a) => JSON.stringify(await ({expression})(...JSON.parse(a)))"
        else:
            args = []
            decl = f"async (a) => JSON.stringify(await ({expression}))"
        return self._call(decl, json.dumps(args))

    def _call(self, declaration: str, arg_json: str) -> Any:
        answer = self.bidi.send("script.callFunction", {
            "functionDeclaration": declaration,
            "arguments": [{"type": "string", "value": arg_json}],
            "target": {"context": self.id},
            "awaitPromise": True,
        })
        if answer.get("type") == "exception":
            raise PageError(str(answer.get("exceptionDetails", {}).get("text", "exception in page")))
        result = answer.get("result", {})
        return json.loads(result["value"]) if result.get("type") == "string" else None

    def _element(self, selector: str, visible: bool) -> dict[str, Any] | None:
        answer = self.bidi.send("script.callFunction", {
            "functionDeclaration": _PICK,
            "arguments": [{"type": "string", "value": selector}, {"type": "boolean", "value": visible}],
            "target": {"context": self.id},
            "awaitPromise": False,
        })
        if answer.get("type") == "exception":
            raise PageError(str(answer.get("exceptionDetails", {}).get("text", "bad selector")))
        node = answer.get("result", {})
        return {"sharedId": node["sharedId"]} if node.get("type") == "node" else None

    def _wait_element(self, selector: str, visible: bool, timeout_ms: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            element = self._element(selector, visible)
            if element is not None:
                return element
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {selector!r}{' to be visible' if visible else ''}")
            time.sleep(0.1)

    def _on_element(self, element: dict[str, Any], body: str) -> Any:
        answer = self.bidi.send("script.callFunction", {
            "functionDeclaration": f"(el) => JSON.stringify({body})",
            "arguments": [element],
            "target": {"context": self.id},
            "awaitPromise": False,
        })
        result = answer.get("result", {})
        return json.loads(result["value"]) if result.get("type") == "string" else None

    # -- queries --------------------------------------------------------------------------------
    def wait_for_selector(self, selector: str, timeout: float = DEFAULT_TIMEOUT_MS, state: str = "visible") -> None:
        self._wait_element(selector, state == "visible", timeout)

    def text_content(self, selector: str, timeout: float = DEFAULT_TIMEOUT_MS) -> str | None:
        element = self._wait_element(selector, False, timeout)
        value = self._on_element(element, "el.textContent")
        return None if value is None else str(value)

    def get_attribute(self, selector: str, name: str, timeout: float = DEFAULT_TIMEOUT_MS) -> str | None:
        element = self._wait_element(selector, False, timeout)
        value = self._on_element(element, f"el.getAttribute({json.dumps(name)})")
        return None if value is None else str(value)

    def is_visible(self, selector: str) -> bool:
        return self._element(selector, True) is not None

    def is_hidden(self, selector: str) -> bool:
        return not self.is_visible(selector)

    def title(self) -> str:
        return str(self.evaluate("document.title"))

    # -- input ----------------------------------------------------------------------------------
    def click(self, selector: str, timeout: float = DEFAULT_TIMEOUT_MS) -> None:
        """A trusted click (real pointer events, user activation) in the element's centre."""
        element = self._wait_element(selector, True, timeout)
        self._on_element(element, "el.scrollIntoView({ block: 'center', inline: 'center' })")
        self.bidi.send("input.performActions", {"context": self.id, "actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "x": 0, "y": 0, "origin": {"type": "element", "element": element}},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0},
            ],
        }]})

    def set_input_files(self, selector: str, files: str | Path | Sequence[str | Path]) -> None:
        paths = [files] if isinstance(files, (str, Path)) else list(files)
        for p in paths:
            if not isinstance(p, (str, Path)):
                raise TypeError("Firefox pages take file paths only, not payloads")
        element = self._wait_element(selector, False, DEFAULT_TIMEOUT_MS)
        self.bidi.send("input.setFiles", {"context": self.id, "element": element,
                                          "files": [str(Path(p).resolve()) for p in paths]})

    def wait_for_timeout(self, ms: float) -> None:
        time.sleep(ms / 1000)

    def screenshot(self, path: str | Path, full_page: bool = False) -> bytes:
        answer = self.bidi.send("browsingContext.captureScreenshot",
                                {"context": self.id, "origin": "document" if full_page else "viewport"})
        data = base64.b64decode(answer["data"])
        Path(path).write_bytes(data)
        return data


class FirefoxContext:
    """A BiDi user context: separate storage, service workers and downloads' origin state."""

    def __init__(self, browser: FirefoxBrowser) -> None:
        self.browser = browser
        self.id = str(browser.bidi.send("browser.createUserContext")["userContext"])
        self.pages: list[FirefoxPage] = []

    def new_page(self) -> FirefoxPage:
        answer = self.browser.bidi.send("browsingContext.create", {"type": "tab", "userContext": self.id})
        page = FirefoxPage(self.browser, str(answer["context"]))
        self.browser._register(page)
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            self.browser._unregister(page)
        with contextlib.suppress(BidiError):
            self.browser.bidi.send("browser.removeUserContext", {"userContext": self.id})


class FirefoxBrowser:
    """Debian's Firefox ESR, headless, driven over WebDriver BiDi."""

    def __init__(self, extra_prefs: dict[str, bool | int | str] | None = None) -> None:
        self._proc = FirefoxProcess(extra_prefs)
        self.bidi = self._proc.bidi
        self.download_dir = Path(tempfile.mkdtemp(prefix="sp2p-firefox-downloads-"))
        self._pages: dict[str, FirefoxPage] = {}
        self._parents: dict[str, str] = {}
        self._downloads: dict[str, Download] = {}
        self._lock = threading.Lock()
        try:
            self.bidi.send("browser.setDownloadBehavior", {"downloadBehavior": {
                "type": "allowed", "destinationFolder": str(self.download_dir)}})
            for method, handler in (
                ("browsingContext.contextCreated", self._on_context),
                ("log.entryAdded", self._on_log),
                ("browsingContext.userPromptOpened", self._on_prompt),
                ("browsingContext.downloadWillBegin", self._on_download),
                ("browsingContext.downloadEnd", self._on_download_end),
            ):
                self.bidi.on(method, handler)
            self.bidi.send("session.subscribe", {"events": [
                "browsingContext.contextCreated", "log.entryAdded", "browsingContext.userPromptOpened",
                "browsingContext.downloadWillBegin", "browsingContext.downloadEnd"]})
        except Exception:
            self.close()
            raise

    @property
    def version(self) -> str:
        return self._proc.version

    @property
    def log(self) -> str:
        return "".join(self._proc.log[-200:])

    def new_context(self, **_playwright_options: Any) -> FirefoxContext:
        # Permissions and download acceptance are profile prefs here (tests/web/bidi.py).
        return FirefoxContext(self)

    def _register(self, page: FirefoxPage) -> None:
        with self._lock:
            self._pages[page.id] = page

    def _unregister(self, page: FirefoxPage) -> None:
        with self._lock:
            self._pages.pop(page.id, None)

    def _page_of(self, context_id: str | None) -> FirefoxPage | None:
        """The top-level page of a browsing context (downloads start in a hidden iframe)."""
        with self._lock:
            seen = 0
            while context_id and context_id not in self._pages and seen < 32:
                context_id = self._parents.get(context_id)
                seen += 1
            return self._pages.get(context_id) if context_id else None

    def _on_context(self, params: dict[str, Any]) -> None:
        if params.get("parent"):
            with self._lock:
                self._parents[str(params["context"])] = str(params["parent"])

    def _on_log(self, params: dict[str, Any]) -> None:
        page = self._page_of(params.get("source", {}).get("context"))
        if page is None:
            return
        text = str(params.get("text", ""))
        if params.get("type") == "javascript":
            page._emit("pageerror", text)
        else:
            level = str(params.get("level", "info"))
            page._emit("console", ConsoleMessage("warning" if level == "warn" else level, text))

    def _on_prompt(self, params: dict[str, Any]) -> None:
        page = self._page_of(params.get("context"))
        if page is None:
            return
        dialog = Dialog(page, params)
        if not page._emit("dialog", dialog):
            dialog.dismiss()  # as Playwright does when nobody listens

    def _on_download(self, params: dict[str, Any]) -> None:
        download = Download(params)
        with self._lock:
            self._downloads[str(params.get("navigation"))] = download
        page = self._page_of(params.get("context"))
        if page is not None:
            page._emit("download", download)

    def _on_download_end(self, params: dict[str, Any]) -> None:
        with self._lock:
            download = self._downloads.pop(str(params.get("navigation")), None)
        if download is not None:
            download.finished(params)

    def close(self) -> None:
        self._proc.close()
        shutil.rmtree(self.download_dir, ignore_errors=True)


@contextlib.contextmanager
def launch_firefox(extra_prefs: dict[str, bool | int | str] | None = None) -> Iterator[FirefoxBrowser]:
    browser = FirefoxBrowser(extra_prefs)
    try:
        yield browser
    finally:
        browser.close()

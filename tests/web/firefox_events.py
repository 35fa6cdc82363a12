"""What Firefox pages (tests/web/firefox.py) hand to the tests, shaped like Playwright's.

PageError for a script that threw; ConsoleMessage, Dialog and Download for page.on(...)
handlers; ExpectedDownload for `with page.expect_download() as info:`.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.web.bidi import BidiConnection, BidiError


class _PromptingPage(Protocol):
    """The page a dialog belongs to: the BiDi connection and its browsing context id."""

    bidi: BidiConnection
    id: str


class PageError(RuntimeError):
    """Script evaluation threw inside the page."""


@dataclass
class ConsoleMessage:
    type: str
    text: str


class Dialog:
    def __init__(self, page: _PromptingPage, params: dict[str, Any]) -> None:
        self._page = page
        self.type = str(params.get("type", ""))
        self.message = str(params.get("message", ""))

    def _answer(self, accept: bool) -> None:
        with contextlib.suppress(BidiError):
            self._page.bidi.send("browsingContext.handleUserPrompt", {"context": self._page.id, "accept": accept})

    def accept(self) -> None:
        self._answer(True)

    def dismiss(self) -> None:
        self._answer(False)


class Download:
    def __init__(self, params: dict[str, Any]) -> None:
        self.suggested_filename = str(params.get("suggestedFilename", ""))
        self.url = str(params.get("url", ""))
        self._done = threading.Event()
        self._status = ""
        self._filepath = ""

    def finished(self, params: dict[str, Any]) -> None:
        self._status = str(params.get("status", ""))
        self._filepath = str(params.get("filepath") or "")
        self._done.set()

    def path(self, timeout_s: float = 600.0) -> Path:
        if not self._done.wait(timeout_s):
            raise TimeoutError(f"download of {self.suggested_filename!r} did not finish")
        if self._status != "complete" or not self._filepath:
            raise RuntimeError(f"download of {self.suggested_filename!r} ended {self._status or 'without a file'}")
        return Path(self._filepath)

    def failure(self, timeout_s: float = 600.0) -> str | None:
        self._done.wait(timeout_s)
        return None if self._status == "complete" else (self._status or "unfinished")

    def save_as(self, target: str | Path) -> None:
        shutil.copyfile(self.path(), target)


class ExpectedDownload:
    """What `with page.expect_download() as info:` yields; `.value` blocks for the event."""

    def __init__(self, timeout_ms: float) -> None:
        self._timeout_s = timeout_ms / 1000
        self._event = threading.Event()
        self._value: Download | None = None

    def resolve(self, value: Download) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    @property
    def value(self) -> Download:
        if not self._event.wait(self._timeout_s) or self._value is None:
            raise TimeoutError("no download started")
        return self._value

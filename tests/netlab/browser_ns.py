"""Debian Chromium inside a netlab namespace, driven by Playwright from the test process.

Playwright's sync API runs on the lab's worker thread of that host (one thread per host,
inside its network namespace): the Node driver and the Chromium it spawns inherit the
namespace, so every socket the browser opens lives behind that host's NAT. Every call that
touches Playwright objects must go through `run` (Playwright objects belong to one thread).

The pages are served from the lab's plain-http server (10.201.0.100), which is no secure
context; Chromium is told to treat that one origin as secure, as it would be behind https.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tests.netlab.lab import Lab
from tests.web.browser import launch

T = TypeVar("T")


class NsBrowser:
    """One headless Chromium (`.browser`) living in `host`; `run(fn, *args)` calls `fn` there."""

    def __init__(self, lab: Lab, host: str, secure_origins: tuple[str, ...]) -> None:
        self.lab = lab
        self.host = host
        self._playwright: Any = None
        self.browser: Any = None
        flag = "--unsafely-treat-insecure-origin-as-secure=" + ",".join(secure_origins)
        lab.call(host, self._start, (flag,), call_timeout=60)

    def _start(self, extra_args: tuple[str, ...]) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self.browser = launch(self._playwright, extra_args)
        except BaseException:
            self._playwright.stop()
            raise

    def run(self, fn: Callable[..., T], *args: Any, timeout: float = 120.0) -> T:
        """`fn(*args)` on the browser's thread (inside the namespace); waits `timeout` s."""
        return self.lab.call(self.host, fn, *args, call_timeout=timeout)

    def close(self) -> None:
        def stop() -> None:
            try:
                if self.browser is not None:
                    self.browser.close()
            finally:
                if self._playwright is not None:
                    self._playwright.stop()

        self.run(stop, timeout=30)

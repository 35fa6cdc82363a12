"""Launching Debian's Chromium through Playwright the way every browser test needs it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"

# --allow-loopback-in-peer-connection plus the media permissions below make Chromium offer
# 127.0.0.1 host candidates (RECIPES-components.md §3.2); the rest keeps it quiet and offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or CHROMIUM
    if not Path(path).exists():
        raise RuntimeError("Debian chromium is missing: apt-get install chromium")
    return path


def launch(playwright: Any, extra_args: tuple[str, ...] = ()) -> Any:
    """Launch Debian's Chromium from a running Playwright (only one may run per thread)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=[*CHROMIUM_ARGS, *extra_args])


@contextlib.contextmanager
def launch_chromium(extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, extra_args)
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Any, **kwargs: Any) -> Any:
    """A fresh context (own service workers and storage) with loopback WebRTC enabled."""
    kwargs.setdefault("permissions", ["camera", "microphone"])
    kwargs.setdefault("accept_downloads", True)
    return browser.new_context(**kwargs)

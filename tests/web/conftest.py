"""Fixtures for the browser UI tests: Debian Chromium driven by Playwright, Debian Firefox ESR
driven over WebDriver BiDi (tests/web/firefox.py), a static file server for module-level JS
tests, and a directory for screenshots (test-artifacts/web/)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import ARTIFACTS, launch, new_context
from tests.web.cli import Cli

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO_ROOT / "static"
TEST_JS_DIR = Path(__file__).resolve().parent / "js"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
BLANK_PAGE = b"<!doctype html><meta charset=utf-8><title>js tests</title><body></body>"


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """/static/* from static/, /testjs/* from tests/web/js/, / is an empty page; strict CSP."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(REPO_ROOT), **kwargs)

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/static/"):
            return str(STATIC_DIR / clean[len("/static/") :])
        if clean.startswith("/testjs/"):
            return str(TEST_JS_DIR / clean[len("/testjs/") :])
        return str(REPO_ROOT / "nonexistent")

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BLANK_PAGE)))
            self.end_headers()
            self.wfile.write(BLANK_PAGE)
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def static_origin() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium(playwright: Any) -> Iterator[Any]:
    browser = launch(playwright)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def js_page(chromium: Any, static_origin: str) -> Iterator[Any]:
    """A page on the static origin, for importing /static/js modules and calling them."""
    ctx = new_context(chromium)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(static_origin + "/")
    try:
        yield page
    finally:
        ctx.close()
    assert not errors, errors


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@functools.cache
def vectors_path() -> Path:
    return (REPO_ROOT / ".." / "shared" / "vectors" / "crypto_vectors.json").resolve()


@pytest.fixture
def web_base(sp2p_server: Any) -> str:
    """Base URL of the real sp2p-server (gunicorn) serving this checkout's static/."""
    url: str = sp2p_server.http_url
    return url


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A Chromium page in a fresh context (own storage and service worker)."""
    ctx = new_context(chromium)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def two_pages(chromium: Any) -> Iterator[tuple[Any, Any]]:
    """A sender page and a receiver page in separate contexts (separate storage and workers)."""
    sctx = new_context(chromium)
    rctx = new_context(chromium)
    try:
        yield sctx.new_page(), rctx.new_page()
    finally:
        sctx.close()
        rctx.close()


@pytest.fixture(scope="session")
def firefox() -> Iterator[Any]:
    """One headless Firefox ESR for the session; tests take fresh contexts from it."""
    from tests.web.firefox import FirefoxBrowser

    browser = FirefoxBrowser()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def firefox_page(firefox: Any) -> Iterator[Any]:
    """A page in a fresh Firefox user context (own storage and service worker)."""
    ctx = firefox.new_context()
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    """CLI processes a test starts; all stopped at the end."""
    started: list[Cli] = []
    try:
        yield started
    finally:
        for c in started:
            c.stop()

"""Page states without a full transfer: first load, phone layout, keyboard use, bad links,
unknown sessions and a wrong code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.web.browser import launch, new_context
from tests.web.flows import NO_PICKERS, PageWatch, shot, start_send, wait_outcome

pytestmark = pytest.mark.browser


def test_send_page_loads_clean_and_is_keyboard_usable(chromium: Any, web_base: str) -> None:
    ctx = new_context(chromium)
    try:
        page = ctx.new_page()
        watch = PageWatch(page)
        page.goto(web_base + "/")
        assert page.title().startswith("SP2P")
        assert page.is_visible("#choose-files") and page.is_visible("#choose-folder")
        # Keyboard: Tab reaches the two pick buttons, in order.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "choose-files"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "choose-folder"
        # Hidden inputs still carry accessible names.
        assert page.get_attribute("#file-input", "aria-label") == "Files to send"
        assert watch.errors == []
    finally:
        ctx.close()


def test_phone_layout_has_no_horizontal_scroll(chromium: Any, web_base: str, tmp_path: Path) -> None:
    ctx = new_context(chromium, viewport={"width": 360, "height": 740}, device_scale_factor=2)
    try:
        page = ctx.new_page()
        src = tmp_path / ("a-rather-long-file-name-for-a-small-screen-" * 3 + ".pdf")
        src.write_bytes(b"x" * 100)
        start_send(page, web_base, str(src))
        shot(page, "send-05-phone-share")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        # Buttons are comfortably tappable.
        height = page.evaluate("document.querySelector('[data-copy-target=share-url]').offsetHeight")
        assert height >= 40
    finally:
        ctx.close()


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("", "No transfer code found in the link."),
        ("#nodash", "Invalid transfer code — expected SESSION_ID-SEED"),
        ("#abcdefgh-not*base62", "Invalid transfer code — check that you copied it correctly"),
        ("#abcdefgh-zzzzzzzzzzzzzzzzzzzzzzzz", "Invalid transfer code — check that you copied it correctly"),
    ],
)
def test_bad_links_explain_themselves(chromium: Any, web_base: str, fragment: str, message: str) -> None:
    ctx = new_context(chromium)
    try:
        page = ctx.new_page()
        watch = PageWatch(page)
        page.goto(web_base + "/r" + fragment)
        assert wait_outcome(page) == message
        assert "#" not in page.url
        assert page.is_hidden("#confirm")
        if not fragment:
            shot(page, "receive-05-no-code")
        assert watch.errors == []
    finally:
        ctx.close()


def test_unknown_or_expired_code_is_noticed_at_once(chromium: Any, web_base: str) -> None:
    """No preview and no session: the page says so on load, as the CLI does, instead of
    offering 'Unknown file / Save file' (issue 14 item 7)."""
    ctx = new_context(chromium)
    try:
        page = ctx.new_page()
        watch = PageWatch(page)
        page.add_init_script(NO_PICKERS)
        page.goto(web_base + "/r#zzzzzzzz-SYW7RiJxkEgOGusQGwp")
        assert wait_outcome(page) == "This link is unknown or has expired: there is no transfer waiting for it."
        assert "new link" in (page.text_content("#error-detail") or "")
        assert page.is_hidden("#confirm") and page.is_hidden("#save-btn")
        shot(page, "receive-06-session-not-found")
        assert watch.errors == []
    finally:
        ctx.close()


def test_a_waiting_sender_without_preview_still_gets_the_card(chromium: Any, web_base: str) -> None:
    """A sender that stored no preview (an older client): the page joins to tell it from an
    unknown code, shows the card, and the sender sees the receiver arrive."""
    ws_url = web_base.replace("http", "ws", 1) + "/ws"
    ws = websocket.create_connection(ws_url, timeout=20, suppress_origin=True)
    ctx = new_context(chromium)
    try:
        ws.send(json.dumps({"type": "hello", "payload": {"version": 2, "clientType": "cli"}}))
        session_id = json.loads(ws.recv())["payload"]["sessionId"]
        page = ctx.new_page()
        page.add_init_script(NO_PICKERS)
        page.goto(f"{web_base}/r#{session_id}-SYW7RiJxkEgOGusQGwp")
        page.wait_for_selector("#save-btn:visible")
        assert "No preview" in (page.text_content("#confirm-note") or "")
        assert json.loads(ws.recv())["type"] == "peer-joined"
    finally:
        ctx.close()
        ws.close()


def test_wrong_code_fails_key_confirmation_on_both_sides(
    two_pages: tuple[Any, Any], web_base: str, tmp_path: Path
) -> None:
    """With no preview to check the code against (an older sender stores none), a wrong code
    joins and key confirmation fails on both sides; nothing leaks."""
    sender, receiver = two_pages
    receiver.add_init_script(NO_PICKERS)
    receiver.route("**/api/file-info/**", lambda route: route.fulfill(status=404, body=""))
    src = tmp_path / "secret.txt"
    src.write_bytes(os.urandom(5000))
    url = start_send(sender, web_base, str(src))
    session_id, seed = url.split("#")[1].split("-", 1)
    wrong = seed[:-1] + ("A" if seed[-1] != "A" else "B")
    receiver.goto(f"{web_base}/r#{session_id}-{wrong}")
    receiver.wait_for_selector("#save-btn:visible")
    assert "No preview" in (receiver.text_content("#confirm-note") or "")
    assert receiver.text_content("#confirm-file") == "Unknown file"  # nothing leaks
    shot(receiver, "receive-07-wrong-code-card")
    receiver.click("#save-btn")
    error = wait_outcome(receiver)
    assert error.startswith("Key confirmation failed — wrong code")
    shot(receiver, "receive-08-wrong-code-error")
    sender_error = wait_outcome(sender)
    assert sender_error != "done"
    # The verify codes differ, as the user would notice.
    assert sender.text_content("#verify-code") != receiver.text_content("#verify-code")


def test_insecure_context_is_explained(playwright: Any, web_base: str) -> None:
    """Over plain http on a non-local name WebCrypto is missing: say so instead of breaking."""
    port = web_base.rsplit(":", 1)[1]
    browser = launch(playwright, ("--host-resolver-rules=MAP sp2p.test 127.0.0.1",))
    try:
        ctx = new_context(browser)
        page = ctx.new_page()
        for path in ("/", "/r#abcdefgh-SYW7RiJxkEgOGusQGwp"):
            page.goto(f"http://sp2p.test:{port}{path}")
            assert page.evaluate("() => window.isSecureContext") is False
            assert wait_outcome(page) == "This page needs a secure connection (https) to encrypt your files."
        ctx.close()
    finally:
        browser.close()


#: Makes the pages' start-up fail where both do it (page.wire() registers beforeunload).
BREAK_INIT = """
(() => {
  const add = window.addEventListener.bind(window);
  window.addEventListener = (type, ...rest) => {
    if (type === 'beforeunload') throw new Error('no beforeunload here');
    return add(type, ...rest);
  };
})();
"""


@pytest.mark.parametrize("path", ["/", "/r#abcdefgh-SYW7RiJxkEgOGusQGwp"])
def test_a_failing_start_is_shown(chromium: Any, web_base: str, path: str) -> None:
    """Whatever init() throws reaches the page's error box instead of a silent blank page."""
    ctx = new_context(chromium)
    try:
        page = ctx.new_page()
        watch = PageWatch(page)
        page.add_init_script(BREAK_INIT)
        page.goto(web_base + path)
        assert wait_outcome(page) == "The page could not start: no beforeunload here"
        assert page.text_content("#error-detail") == "Reload the page to try again."
        assert watch.errors == []  # caught and shown, not an uncaught page error
    finally:
        ctx.close()

"""Rough edges a new user trips over in the web UI, in Chromium: no JavaScript, empty files and
folders, a file gone before it is read, codes pasted with whitespace, a wrong or cut-off code,
the peer closing its page, a server that went away. Each failure must be one sentence saying
what happened plus one saying what to do, with no page error on the way."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server
from tests.web.browser import new_context
from tests.web.cli import Cli, cli_send
from tests.web.flows import (
    NO_PICKERS,
    OPFS_PICKERS,
    OPFS_TREE,
    WRONG_CODE_ADVICE,
    PageWatch,
    receive_download,
    scale_liveness,
    sha256_file,
    shot,
    start_big_transfer,
    start_send,
    wait_outcome,
)

pytestmark = pytest.mark.browser

NOSCRIPT = (
    "This page needs JavaScript to encrypt files in your browser: turn JavaScript on for this site "
    "and reload, or use the sp2p command-line tool."
)
SENDER_AGAIN = "Press Start over to send again; the receiver will need the new link."
RECEIVER_AGAIN = "Ask the sender to send it again: each link works only once."
#: the send page and a receive page with a code
NOJS_PATHS = ("/", "/r#abcdefgh-SYW7RiJxkEgOGusQGwp")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outcome_and_advice(page: Any) -> tuple[str, str]:
    return wait_outcome(page), page.text_content("#error-detail") or ""


@pytest.mark.parametrize("path", NOJS_PATHS)
def test_without_javascript_the_page_says_what_to_do(chromium: Any, web_base: str, path: str) -> None:
    ctx = new_context(chromium, java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(web_base + path)
        assert page.inner_text("main").strip() == NOSCRIPT  # and no buttons that do nothing
        shot(page, f"nojs{path.split('#')[0].replace('/', '-')}")
    finally:
        ctx.close()


def test_without_javascript_firefox_says_what_to_do(web_base: str) -> None:
    """Both pages in one Firefox launched with JavaScript off (a launch costs seconds)."""
    from tests.web.firefox import launch_firefox

    with launch_firefox({"javascript.enabled": False}) as firefox:
        for path in NOJS_PATHS:
            ctx = firefox.new_context()
            try:
                page = ctx.new_page()
                page.goto(web_base + path)
                # (script.callFunction hangs with JavaScript off; these reads do not)
                assert page.text_content("noscript > p") == NOSCRIPT, path
                assert page.is_visible("noscript > p") and not page.is_visible("#pick"), path
            finally:
                ctx.close()


def test_an_empty_file_is_sent_and_shown_as_zero_bytes(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    watch_s, watch_r = PageWatch(sender, console=True), PageWatch(receiver, console=True)
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    url = start_send(sender, web_base, str(src))
    receiver.goto(url)
    receiver.wait_for_selector("#save-btn:visible")
    assert receiver.text_content("#confirm-size") == "0 B"  # not "Unknown size"
    saved, name = receive_download(receiver, url, tmp_path)
    assert name == "empty.txt"
    assert wait_outcome(receiver) == "done" and wait_outcome(sender) == "done"
    assert saved.stat().st_size == 0
    assert not watch_s.errors and not watch_r.errors


def test_an_empty_folder_is_explained_and_another_can_be_chosen(page: Any, web_base: str, tmp_path: Path) -> None:
    watch = PageWatch(page, console=True)
    empty = tmp_path / "nothing here"
    empty.mkdir()
    page.goto(web_base + "/")
    page.set_input_files("#folder-input", str(empty))
    assert outcome_and_advice(page) == (
        "That folder is empty: there is nothing to send.",
        "Choose a folder with at least one file in it.",
    )
    assert page.is_visible("#choose-folder")  # still on the pick screen
    full = tmp_path / "full"
    full.mkdir()
    (full / "a.txt").write_bytes(b"a")
    page.set_input_files("#folder-input", str(full))
    page.wait_for_selector("#share-url:not(:empty)")
    assert page.is_hidden("#error")
    assert not watch.errors


def test_a_file_gone_before_it_is_read_is_named_on_both_sides(
    two_pages: tuple[Any, Any], web_base: str, tmp_path: Path
) -> None:
    sender, receiver = two_pages
    watch_s, watch_r = PageWatch(sender, console=True), PageWatch(receiver, console=True)
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "moved away.bin"
    src.write_bytes(os.urandom(100_000))
    url = start_send(sender, web_base, str(src))
    src.unlink()  # moved or deleted after it was chosen
    receiver.goto(url)
    receiver.click("#save-btn")
    assert outcome_and_advice(sender) == (
        "Could not read “moved away.bin”: it was moved, changed or deleted after you chose it.",
        "Press Start over and choose it again.",
    )
    assert outcome_and_advice(receiver) == (
        "The sender stopped the transfer after an error on its side.",
        RECEIVER_AGAIN,
    )
    assert not watch_s.errors and not watch_r.errors


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: f"%20{c}%0A",  # pasted with a space before and a newline after
        lambda c: f"{c[:4]}%20{c[4:]}",  # a space inside the session id
        lambda c: f"{c[:12]}%0D%0A{c[12:]}",  # wrapped across two lines inside the secret part
    ],
    ids=["around", "in-id", "wrapped"],
)
def test_a_code_pasted_with_whitespace_still_works(
    two_pages: tuple[Any, Any], web_base: str, tmp_path: Path, mangle: Any
) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "pasted.bin"
    src.write_bytes(os.urandom(20_000))
    url = start_send(sender, web_base, str(src))
    code = url.split("#", 1)[1]
    saved, _ = receive_download(receiver, f"{web_base}/r#{mangle(code)}", tmp_path)
    assert wait_outcome(receiver) == "done"
    assert sha256_file(saved) == sha256_file(src)
    assert receiver.text_content("#share-cli") == f"sp2p receive -server {web_base} {code}"


def test_a_wrong_or_cut_off_code_is_refused_before_the_join(
    chromium: Any, two_pages: tuple[Any, Any], web_base: str, tmp_path: Path
) -> None:
    """The preview does not open with a wrong seed, so the page refuses at once and the sender's
    link stays usable (joined, only key confirmation would fail and the link would be spent)."""
    sender, receiver = two_pages
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "still waiting.bin"
    src.write_bytes(os.urandom(30_000))
    url = start_send(sender, web_base, str(src))
    session_id, seed = url.split("#", 1)[1].split("-", 1)
    mistyped = seed[:-1] + ("A" if seed[-1] != "A" else "B")
    for bad in (f"{session_id}-{mistyped}", f"{session_id}-{seed[:-3]}"):
        ctx = new_context(chromium)
        try:
            page = ctx.new_page()
            watch = PageWatch(page, console=True)
            page.goto(f"{web_base}/r#{bad}")
            assert outcome_and_advice(page) == (
                "This code does not open the sender's file details: it looks cut off or mistyped.",
                WRONG_CODE_ADVICE,
            )
            assert page.is_hidden("#confirm") and page.is_hidden("#status")
            shot(page, "receive-09-wrong-code-refused")
            assert not watch.errors
        finally:
            ctx.close()
    assert sender.is_visible("#share") and sender.get_attribute('[data-step="wait"]', "data-state") == "active"
    saved, _ = receive_download(receiver, url, tmp_path)
    assert wait_outcome(receiver) == "done" and wait_outcome(sender) == "done"
    assert sha256_file(saved) == sha256_file(src)


@pytest.mark.parametrize("data", ["", "AAAA", "A" * 40_000], ids=["empty", "too-short", "past-the-cap"])
def test_a_preview_no_sender_writes_is_no_verdict_on_the_code(
    two_pages: tuple[Any, Any], web_base: str, tmp_path: Path, data: str
) -> None:
    """A blob no sender could have written is the server's doing: the page shows no preview and
    the right code still joins (as the CLI's check does)."""
    sender, receiver = two_pages
    receiver.add_init_script(NO_PICKERS)
    body = json.dumps({"data": data})
    receiver.route("**/api/file-info/**", lambda route: route.fulfill(status=200, body=body, content_type="application/json"))
    src = tmp_path / "junk preview.bin"
    src.write_bytes(os.urandom(10_000))
    url = start_send(sender, web_base, str(src))
    receiver.goto(url)
    receiver.wait_for_selector("#save-btn:visible")
    assert receiver.text_content("#confirm-note") == "No preview is available. You will see the name once the transfer starts."
    saved, _ = receive_download(receiver, url, tmp_path)
    assert wait_outcome(receiver) == "done" and wait_outcome(sender) == "done"
    assert sha256_file(saved) == sha256_file(src)


def test_the_receiver_declines_and_the_sender_hears_it(
    two_pages: tuple[Any, Any], web_base: str, tmp_path: Path
) -> None:
    sender, receiver = two_pages
    watch_s, watch_r = PageWatch(sender, console=True), PageWatch(receiver, console=True)
    src = tmp_path / "unwanted.bin"
    src.write_bytes(os.urandom(5000))
    url = start_send(sender, web_base, str(src))
    receiver.goto(url)
    receiver.wait_for_selector("#decline-btn:visible")
    receiver.click("#decline-btn")
    receiver.wait_for_selector("#declined:visible")
    assert receiver.is_hidden("#confirm") and receiver.is_hidden("#error")
    assert receiver.evaluate("document.activeElement.id") == "declined"
    shot(receiver, "receive-10-declined")
    assert outcome_and_advice(sender) == ("The receiver declined the transfer.", SENDER_AGAIN)
    assert not watch_s.errors and not watch_r.errors


def test_a_reloaded_receive_page_says_why_the_code_is_gone(page: Any, web_base: str, tmp_path: Path) -> None:
    """The code leaves the address bar as the page opens, so a reload cannot find it: say so,
    rather than 'no code in the link' (which the user never saw missing)."""
    watch = PageWatch(page, console=True)
    page.add_init_script(NO_PICKERS)
    page.goto(f"{web_base}/r#zzzzzzzz-SYW7RiJxkEgOGusQGwp")
    wait_outcome(page)
    page.reload()
    assert outcome_and_advice(page) == (
        "This page was reloaded, and the link's code left the address bar when it first opened.",
        "Open the link again from the sender's message; if a transfer had started, ask the sender for a new link.",
    )
    assert page.evaluate("JSON.stringify(sessionStorage)") == '{"sp2p-opened-a-link":"1"}'  # no code kept
    assert not watch.errors


def test_a_cli_folder_with_names_windows_cannot_hold_extracts(
    page: Any, web_base: str, tmp_path: Path, clis: list[Cli]
) -> None:
    """'12:30.log' or 'CON.txt' are fine on Linux; extracting in the browser makes them portable
    as the CLI does, instead of refusing the whole folder."""
    watch = PageWatch(page, console=True)
    page.add_init_script(OPFS_PICKERS)
    top = tmp_path / "odd names"
    top.mkdir()
    for name in ("12:30.log", "CON.txt", "what?.txt", "ok.txt"):
        (top / name).write_bytes(name.encode())
    cli, code = cli_send(clis, web_base, top)
    page.goto(f"{web_base}/r#{code}")
    page.click("#extract-btn")
    assert wait_outcome(page) == "done"
    assert cli.wait(60) == 0, cli.output()
    got = page.evaluate(OPFS_TREE, "extract")
    want = {f"odd names/{n}": sha256_bytes(o.encode()) for n, o in
            (("12_30.log", "12:30.log"), ("_CON.txt", "CON.txt"), ("what_.txt", "what?.txt"), ("ok.txt", "ok.txt"))}
    assert got == {"odd names/": "", **want}
    assert not watch.errors


def test_a_copy_button_pressed_twice_gets_its_label_back(page: Any, web_base: str, tmp_path: Path) -> None:
    watch = PageWatch(page, console=True)
    page.clock.install()  # the page's timers on a clock the test moves (no 2.6 s of real waiting)
    src = tmp_path / "x.txt"
    src.write_bytes(b"x")
    start_send(page, web_base, str(src))
    button = '[data-copy-target="share-url"]'
    page.click(button)
    page.clock.run_for(300)
    page.click(button)
    assert page.text_content(button) in ("Copied!", "Press Ctrl+C")
    page.clock.run_for(2600)
    assert page.text_content(button) == "Copy link"
    assert not watch.errors


@pytest.mark.parametrize("closing", ["sender", "receiver"])
def test_a_page_closing_mid_transfer_is_explained_to_the_other(
    closing: str, two_pages: tuple[Any, Any], web_base: str, tmp_path: Path
) -> None:
    """The page that stays says the other side left. A closing sender closes its connection
    (its Cancel would wait behind the data it buffered), so the receiver hears at once instead of
    after 15 s of silence; a closing receiver's Cancel gets out, or else its channel closing or
    the liveness rule (scaled from 15 s to 3 s for that case, flows.scale_liveness) tell the
    sender. A closing sender's receiver keeps the shipped 15 s: scaled, the silence rule beat
    the close notice under load (one -n 4 run at load 15), and the notice is what is asserted."""
    sender, receiver = two_pages
    if closing == "receiver":
        for page in two_pages:
            scale_liveness(page)
    receiver.add_init_script(NO_PICKERS)
    leaving, staying = (sender, receiver) if closing == "sender" else (receiver, sender)
    watch = PageWatch(staying, console=True)
    start_big_transfer(sender, receiver, web_base, tmp_path)
    leaving.close()
    text, advice = outcome_and_advice(staying)
    closed = f"The connection to the {closing} was lost: they may have closed the page or gone offline."
    if closing == "sender":
        assert text == closed
    else:
        assert text in (
            "The receiver cancelled the transfer.",
            closed,
            "The connection to the receiver was lost: nothing came from them for 3 seconds.",
        ), text
    assert advice == (RECEIVER_AGAIN if closing == "sender" else SENDER_AGAIN)
    if closing == "receiver":
        shot(sender, "send-06-receiver-left")
    assert not watch.errors


@pytest.fixture
def own_server() -> Iterator[ServerProc]:
    """A server of this test's own, so the test can stop it."""
    with start_server(*NO_LIMIT_FLAGS) as server:
        yield server


def test_a_server_gone_away_is_explained(chromium: Any, own_server: ServerProc, tmp_path: Path) -> None:
    """Three pages as the server stops (one server started for them all): a sender waiting with
    its link, a receiver at the card (not joined yet) and a send page not used yet."""
    base = own_server.http_url
    sctx, rctx, lctx = new_context(chromium), new_context(chromium), new_context(chromium)
    try:
        waiting, receiver, later = sctx.new_page(), rctx.new_page(), lctx.new_page()
        watch_w, watch_r = PageWatch(waiting, console=True), PageWatch(receiver, console=True)
        receiver.add_init_script(NO_PICKERS)
        src = tmp_path / "x.txt"
        src.write_bytes(b"x")
        url = start_send(waiting, base, str(src))
        receiver.goto(url)
        receiver.wait_for_selector("#save-btn:visible")
        later.goto(base + "/")
        own_server.stop()
        assert outcome_and_advice(waiting) == ("The connection to the sp2p server was lost.", SENDER_AGAIN)
        assert waiting.is_hidden("#share")  # the link no longer works: not offered any more
        later.set_input_files("#file-input", str(src))
        assert outcome_and_advice(later) == (
            "Could not reach the sp2p server.",
            "Check your internet connection, then reload the page to try again.",
        )
        shot(later, "send-07-server-down")
        receiver.click("#save-btn")
        # not "reload": the receive page's code left the address bar when it opened
        assert outcome_and_advice(receiver) == (
            "Could not reach the sp2p server.",
            "Check your internet connection, then open the link again.",
        )
        assert not watch_w.errors and not watch_r.errors
    finally:
        sctx.close()
        rctx.close()
        lctx.close()


def test_the_watch_sees_unhandled_rejections_and_console_errors(page: Any, web_base: str) -> None:
    """What every test here relies on: PageWatch catches what a page leaves unhandled."""
    watch = PageWatch(page, console=True)
    page.goto(web_base + "/")
    page.evaluate("() => { Promise.reject(new Error('left alone')); console.error('logged'); }")
    page.wait_for_timeout(300)
    assert any("left alone" in e for e in watch.errors), watch.errors
    assert "console: logged" in watch.errors


def test_keyboard_only_receive_and_start_over(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    """The card has focus on Save, Tab reaches Decline and the terminal commands, Enter saves;
    the outcome takes focus, and after a failure Tab reaches Start over."""
    sender, receiver = two_pages
    watch_s, watch_r = PageWatch(sender, console=True), PageWatch(receiver, console=True)
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "keys.bin"
    src.write_bytes(os.urandom(40_000))
    url = start_send(sender, web_base, str(src))
    receiver.goto(url)
    receiver.wait_for_selector("#save-btn:visible")
    focused = "() => document.activeElement.id || document.activeElement.tagName"
    assert receiver.evaluate(focused) == "save-btn"
    receiver.keyboard.press("Tab")
    assert receiver.evaluate(focused) == "decline-btn"
    receiver.keyboard.press("Tab")
    assert receiver.evaluate(focused) == "SUMMARY"
    receiver.keyboard.press("Shift+Tab")
    receiver.keyboard.press("Shift+Tab")
    with receiver.expect_download() as info:
        receiver.keyboard.press("Enter")
    info.value.save_as(tmp_path / "got")
    assert wait_outcome(receiver) == "done" and wait_outcome(sender) == "done"
    assert receiver.evaluate(focused) == "done"
    assert sha256_file(tmp_path / "got") == sha256_file(src)
    # a failure on the send page: focus on the message, Tab reaches Start over
    sender.goto(web_base + "/")
    empty = tmp_path / "empty"
    empty.mkdir()
    sender.set_input_files("#folder-input", str(empty))
    wait_outcome(sender)
    assert sender.evaluate(focused) == "error"
    sender.keyboard.press("Tab")
    assert sender.evaluate(focused) == "restart"
    assert not watch_s.errors and not watch_r.errors


def test_phone_sized_card_and_refusal_fit(chromium: Any, web_base: str, tmp_path: Path) -> None:
    """At 360 px the receive card (three buttons), the Declined note and a refusal fit the width,
    and the card's buttons stay tappable."""
    phone = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2}
    sctx, rctx = new_context(chromium), new_context(chromium, **phone)
    try:
        sender, receiver = sctx.new_page(), rctx.new_page()
        watch = PageWatch(receiver, console=True)
        src = tmp_path / ("a-long-name-for-a-small-screen-" * 4 + ".pdf")
        src.write_bytes(b"x" * 100)
        url = start_send(sender, web_base, str(src))
        overflow = "() => document.documentElement.scrollWidth - window.innerWidth"
        receiver.goto(url[:-3])  # cut off: refused
        wait_outcome(receiver)
        assert receiver.evaluate(overflow) <= 0
        receiver.goto(url)
        receiver.wait_for_selector("#decline-btn:visible")
        assert receiver.evaluate(overflow) <= 0
        for button in ("#save-btn", "#decline-btn"):
            assert receiver.evaluate(f"() => document.querySelector('{button}').offsetHeight") >= 40
        shot(receiver, "receive-11-phone-card")
        receiver.click("#decline-btn")
        receiver.wait_for_selector("#declined:visible")
        assert receiver.evaluate(overflow) <= 0
        assert not watch.errors
    finally:
        sctx.close()
        rctx.close()


def test_a_code_typed_on_the_receive_page(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    """/r without a code offers a field: nonsense and a mistyped code are refused on the page
    (the sender's link stays usable), then the code typed with a space opens the card."""
    sender, receiver = two_pages
    watch = PageWatch(receiver, console=True)
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "typed.bin"
    src.write_bytes(os.urandom(30_000))
    url = start_send(sender, web_base, str(src))
    code = url.split("#", 1)[1]
    receiver.goto(web_base + "/r")
    assert outcome_and_advice(receiver) == (
        "No transfer code found in the link.",
        "Open the full link the sender shared, or type its code below.",
    )
    shot(receiver, "receive-12-enter-code")

    def submit(text: str) -> None:
        receiver.fill("#code-input", text)
        receiver.press("#code-input", "Enter")

    submit("not a code")
    assert receiver.text_content("#error-text") == "Invalid transfer code — expected SESSION_ID-SEED"
    assert receiver.text_content("#error-detail") == (
        "Type the code exactly as the sender shows it, or paste their whole link."
    )
    session_id, seed = code.split("-", 1)
    submit(f"{session_id}-{seed[:-1]}{'A' if seed[-1] != 'A' else 'B'}")
    assert outcome_and_advice(receiver)[1] == WRONG_CODE_ADVICE
    receiver.wait_for_selector("#code-input:visible")
    submit(f"{code[:6]} {code[6:]}")
    receiver.wait_for_selector("#save-btn:visible")
    assert receiver.text_content("#confirm-file") == "typed.bin"
    assert receiver.is_hidden("#enter-code") and receiver.is_hidden("#error")
    with receiver.expect_download() as info:
        receiver.click("#save-btn")
    info.value.save_as(tmp_path / "got")
    assert wait_outcome(receiver) == "done" and wait_outcome(sender) == "done"
    assert sha256_file(tmp_path / "got") == sha256_file(src)
    assert not watch.errors


def test_a_whole_link_pasted_into_the_code_field(page: Any, web_base: str) -> None:
    page.goto(web_base + "/r")
    page.wait_for_selector("#code-input:visible")
    page.fill("#code-input", f"  {web_base}/r#zzzzzzzz-SYW7RiJxkEgOGusQGwp\n")
    page.press("#code-input", "Enter")
    assert wait_outcome(page) == "This link is unknown or has expired: there is no transfer waiting for it."

"""Browser -> browser through the real server: files, folders, every save path, cancel."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.web.flows import (
    NO_PICKERS,
    OPFS_PICKERS,
    OPFS_TREE,
    PageWatch,
    receive_download,
    scale_liveness,
    sha256_file,
    shot,
    start_big_transfer,
    start_send,
    tree_hashes,
    wait_outcome,
)

pytestmark = pytest.mark.browser


def make_folder(root: Path) -> Path:
    top = root / "photos 2024"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"alpha\n")
    (top / "empty.bin").write_bytes(b"")
    (top / "sub" / "big.bin").write_bytes(os.urandom(700_000))
    (top / "sub" / "deeper" / "ünïcödé ✓.txt").write_bytes("grüße".encode())
    (top / "sub" / "deeper" / ("n" * 120 + ".dat")).write_bytes(os.urandom(3000))
    return top


def test_file_via_streamed_download(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    watch_s, watch_r = PageWatch(sender), PageWatch(receiver)
    receiver.add_init_script(NO_PICKERS)
    src = tmp_path / "report 1MiB.bin"
    src.write_bytes(os.urandom(1 << 20))

    sender.goto(web_base + "/")
    shot(sender, "send-01-pick")
    url = start_send(sender, web_base, str(src))
    assert "#" in url and url.startswith(web_base + "/r#")
    shot(sender, "send-02-share")
    assert sender.text_content("#share-cli") == f"sp2p receive -server {web_base} {url.split('#')[1]}"

    receiver.goto(url)
    receiver.wait_for_selector("#save-btn:visible")
    assert "#" not in receiver.url  # the code is erased from the address bar
    assert receiver.text_content("#confirm-file") == src.name
    assert receiver.text_content("#confirm-size") == "1.0 MiB"
    shot(receiver, "receive-01-card")

    with receiver.expect_download(timeout=120_000) as info:
        receiver.click("#save-btn")
    download = info.value
    assert download.suggested_filename == src.name
    saved = tmp_path / "saved.bin"
    download.save_as(saved)
    assert wait_outcome(receiver) == "done"
    assert wait_outcome(sender) == "done"
    shot(receiver, "receive-02-done")
    shot(sender, "send-03-done")
    assert sha256_file(saved) == sha256_file(src)
    assert receiver.get_attribute("#done", "data-sha256") == sha256_file(src)
    code_s, code_r = sender.text_content("#verify-code"), receiver.text_content("#verify-code")
    assert code_s == code_r and len(code_s or "") == 8
    assert not watch_s.errors and not watch_r.errors
    assert not watch_s.dialogs and not watch_r.dialogs


def test_folder_extracted_into_directory(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(OPFS_PICKERS)
    top = make_folder(tmp_path)
    url = start_send(sender, web_base, str(top), folder=True)
    receiver.goto(url)
    receiver.wait_for_selector("#extract-btn:visible")
    assert receiver.text_content("#confirm-file") == top.name
    assert "(5 files)" in (receiver.text_content("#confirm-size") or "")
    receiver.click("#extract-btn")
    assert wait_outcome(receiver) == "done"
    assert wait_outcome(sender) == "done"
    shot(receiver, "receive-03-folder-extracted")
    got = receiver.evaluate(OPFS_TREE, "extract")
    want = {f"{top.name}/{k}": v for k, v in tree_hashes(top).items()}
    want[f"{top.name}/"] = ""
    assert got == want


def test_folder_saved_as_tar(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(NO_PICKERS)
    top = make_folder(tmp_path)
    url = start_send(sender, web_base, str(top), folder=True)
    saved, name = receive_download(receiver, url, tmp_path)
    assert name == f"{top.name}.tar"
    assert wait_outcome(receiver) == "done"
    assert wait_outcome(sender) == "done"
    data = saved.read_bytes()
    assert data[-1024:] == bytes(1024) and len(data) % 512 == 0
    out = tmp_path / "untarred"
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(out, filter="data")
    assert tree_hashes(out / top.name) == tree_hashes(top)


def test_file_via_save_picker(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(OPFS_PICKERS)
    src = tmp_path / "notes.txt"
    src.write_bytes(os.urandom(600_000))
    url = start_send(sender, web_base, str(src))
    receiver.goto(url)
    receiver.click("#save-btn")
    assert wait_outcome(receiver) == "done"
    assert wait_outcome(sender) == "done"
    assert receiver.evaluate("window.__sp2pPicked") == [["file", "notes.txt"]]
    assert receiver.evaluate(OPFS_TREE, "saved") == {"notes.txt": sha256_file(src)}


def test_several_files_become_one_folder(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(OPFS_PICKERS)
    files = []
    for name in ("one.txt", "two.bin"):
        p = tmp_path / name
        p.write_bytes(os.urandom(10_000))
        files.append(p)
    url = start_send(sender, web_base, [str(p) for p in files])
    receiver.goto(url)
    receiver.wait_for_selector("#extract-btn:visible")
    assert receiver.text_content("#confirm-file") == "2-files"
    receiver.click("#extract-btn")
    assert wait_outcome(receiver) == "done"
    assert receiver.evaluate(OPFS_TREE, "extract") == {p.name: sha256_file(p) for p in files}


def test_receiver_cancel_stops_both_sides(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    sender, receiver = two_pages
    receiver.add_init_script(OPFS_PICKERS)
    start_big_transfer(sender, receiver, web_base, tmp_path)
    shot(receiver, "receive-04-progress")
    receiver.click("#cancel")
    assert wait_outcome(receiver) == "Transfer cancelled."
    assert "cancelled" in wait_outcome(sender).lower()
    shot(sender, "send-04-peer-cancelled")
    # Nothing half-written is committed: the aborted writable never replaced the (empty) target.
    size = receiver.evaluate(
        """async () => {
          const d = await (await navigator.storage.getDirectory()).getDirectoryHandle('saved');
          return (await (await d.getFileHandle('large.bin')).getFile()).size;
        }"""
    )
    assert size == 0


SLOW_DISK = """
(() => {
  // A save target that takes 0.6 s per write: far slower than the network, for ~7 s.
  window.showSaveFilePicker = async (opts = {}) => {
    const root = await navigator.storage.getDirectory();
    const real = await root.getFileHandle(opts.suggestedName || 'file', { create: true });
    return {
      name: real.name,
      createWritable: async () => {
        const w = await real.createWritable();
        return {
          write: async (b) => {
            window.__slowWrites = (window.__slowWrites || 0) + 1;
            await new Promise(r => setTimeout(r, 600));
            return w.write(b);
          },
          close: () => w.close(),
          abort: () => w.abort(),
        };
      },
    };
  };
})();
"""


@pytest.mark.slow
def test_slow_receiver_is_not_aborted(two_pages: tuple[Any, Any], web_base: str, tmp_path: Path) -> None:
    """W20/W3: a consumer slower than the link for longer than the liveness window (scaled to
    3 s) must neither trip a buffer limit nor be declared dead; heartbeats keep both sides alive."""
    sender, receiver = two_pages
    for page in (sender, receiver):
        scale_liveness(page)
    receiver.add_init_script(SLOW_DISK)
    src = tmp_path / "slow.bin"
    src.write_bytes(os.urandom(3 << 20))
    url = start_send(sender, web_base, str(src))
    dead_after = "async () => (await import('/static/js/wire.js')).HEARTBEAT_DEAD_AFTER_MS"
    assert sender.evaluate(dead_after) == 3000
    receiver.goto(url)
    assert receiver.evaluate(dead_after) == 3000
    receiver.click("#save-btn")
    assert wait_outcome(receiver) == "done"
    assert wait_outcome(sender) == "done"
    # the writes, one after the other, held the transfer back for over two dead-after windows
    assert receiver.evaluate("window.__slowWrites") * 0.6 > 2 * 3
    digest = receiver.evaluate(
        """async () => { const r = await navigator.storage.getDirectory();
             const f = await (await r.getFileHandle('slow.bin')).getFile();
             const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await f.arrayBuffer()));
             return Array.from(d, b => b.toString(16).padStart(2, '0')).join(''); }"""
    )
    assert digest == sha256_file(src)

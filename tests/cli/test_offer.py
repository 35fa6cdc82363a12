"""The receiver's question on a terminal names what is offered: a folder says it is one (the web
page does), so an empty folder no longer reads like a 1.5 KiB file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import finish, read_code, spawn
from tests.e2e.ptyrun import finish_tty, spawn_tty


@pytest.mark.parametrize(("files", "offer"), [
    ({"one.txt": "1", "sub/two.txt": "2"}, r"Offer: folder box, [0-9.]+ KiB, 2 files, from a CLI\r\n"),
    ({}, r"Offer: folder box, [0-9.]+ KiB, from a CLI\r\n"),
])
def test_a_folder_is_offered_as_a_folder(env: dict[str, str], tmp_path: Path, outdir: Path,
                                         files: dict[str, str], offer: str) -> None:
    box = tmp_path / "box"
    box.mkdir()
    for name, text in files.items():
        (box / name).parent.mkdir(parents=True, exist_ok=True)
        (box / name).write_text(text)
    sender = spawn(["send", str(box)], env)
    try:
        child = spawn_tty(["receive", "-output", str(outdir), read_code(sender)], env)
        child.expect(offer)
        child.expect(r"Receive it\? \[Y/n\]")
        child.sendline("n")
        rc, rest = finish_tty(child)
    finally:
        s = finish(sender)
    assert rc == s.rc == ExitStatus.TRANSFER, rest + s.err
    assert list(outdir.iterdir()) == []

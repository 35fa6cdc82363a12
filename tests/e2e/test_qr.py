"""The share URL's QR code in the terminal (issue 14 item 4), through the real CLI: `q` toggles it
while waiting on a pseudo-terminal, `-qr` shows it at once; the drawn half blocks decode back to
exactly the QR matrix of the share URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import segno

from tests.e2e.harness import CODE_RE, finish, read_code, spawn
from tests.e2e.ptyrun import finish_tty, spawn_tty

pytestmark = pytest.mark.e2e

_MODULES = {" ": (0, 0), "\u2580": (1, 0), "\u2584": (0, 1), "\u2588": (1, 1)}
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def _matrix_from_lines(lines: list[str]) -> list[list[int]]:
    rows: list[list[int]] = []
    for line in lines:
        pairs = [_MODULES[c] for c in line]
        rows.append([t for t, _ in pairs])
        rows.append([b for _, b in pairs])
    return rows


def _expected(url: str) -> list[list[int]]:
    rows = [[int(bool(m)) for m in r] for r in segno.make_qr(url, error="l").matrix_iter(border=2)]
    return rows + [[0] * len(rows[0])] if len(rows) % 2 else rows


def _qr_block(text: str) -> list[str]:
    """The half-block lines of the first QR code in `text` (colour codes and indent removed)."""
    lines = [_SGR.sub("", line).removeprefix("  ") for line in text.replace("\r", "").split("\n")]
    block = [line for line in lines if line and set(line) <= set(_MODULES) and len(line) > 20]
    assert block, text
    return block


def test_q_toggles_the_qr_code_while_waiting(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "phone.txt"
    src.write_text("to a phone")
    sender = spawn_tty(["send", str(src)], env)
    sender.expect(r"Browser:\s+(\S+/r#" + CODE_RE.pattern + r")  \(press q for QR code\)")
    url = sender.match.group(1)
    sender.expect("Waiting for receiver")
    sender.send("q")
    sender.expect(r"\(press q to hide\)")
    drawn = sender.before or ""
    assert "\x1b[30;47m" in drawn  # black on white whatever the terminal's theme
    assert _matrix_from_lines(_qr_block(drawn)) == _expected(url)
    sender.send("q")
    sender.expect(r"\x1b\[\d+A\x1b\[J")  # hidden again: up over the code, clear below
    code = url.split("#", 1)[1]
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    rc, screen = finish_tty(sender)
    assert (rc, r.rc) == (0, 0), screen + r.err
    assert (outdir / "phone.txt").read_text() == "to a phone"


def test_qr_flag_without_a_terminal(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "flag.txt"
    src.write_text("x")
    sender = spawn(["send", "-qr", str(src)], env)
    code = read_code(sender)
    assert sender.stdout is not None
    url = sender.stdout.readline().decode().strip()
    r = finish(spawn(["receive", "-output", str(outdir), code], env))
    s = finish(sender)
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    assert "\x1b" not in s.err and "press q" not in s.err
    assert _matrix_from_lines(_qr_block(s.err)) == _expected(url)

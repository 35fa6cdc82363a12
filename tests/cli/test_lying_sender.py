"""T3 (hash mismatch) and C6 (c, d: truncation at the end) through the real receiving CLI and its
real sinks: a sender that sends every byte right and then lies about them (tests/cli/lying_sender.py)
gets no file or folder committed, no temp or staging file left, a clear line and exit 6 on the
receiving side, and is told why. The state machine alone is tested in tests/core."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp2p.status import ExitStatus
from tests.e2e.harness import finish, read_code, spawn

#: what the receiver must say for each lie (its one error line)
SAYS = {
    "wrong-hash": "integrity check failed",
    "no-done": "transfer incomplete: the connection closed ",  # early, or in the middle of a frame
    "short-total": "verification mismatch: expected ",
}


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
@pytest.mark.parametrize("lie", list(SAYS))
def test_a_sender_lying_at_the_end_gets_nothing_committed(env: dict[str, str], tmp_path: Path,
                                                          outdir: Path, lie: str, folder: bool) -> None:
    (outdir / "keep.txt").write_text("precious")
    sender = spawn(["send", str(tmp_path)], env,
                   main=["-m", "tests.cli.lying_sender", "--lie", lie, *(["--folder"] if folder else []), "--"])
    try:
        code = read_code(sender)
        r = finish(spawn(["receive", "-output", str(outdir), code], env), timeout=90)
    finally:
        s = finish(sender, timeout=90)
    assert "Traceback" not in r.err + s.err, r.err + s.err
    errors = [line for line in r.err.splitlines() if line.startswith("sp2p: error: ")]
    assert len(errors) == 1 and SAYS[lie] in errors[0], r.err
    assert r.rc in (ExitStatus.TRANSFER, ExitStatus.SECURITY), r.err
    # nothing under a final name, no temp or staging file, the file already there untouched
    assert sorted(p.name for p in outdir.iterdir()) == ["keep.txt"], r.err
    assert (outdir / "keep.txt").read_text() == "precious"
    if lie != "no-done":  # the sender is still there to be told
        assert s.rc == ExitStatus.TRANSFER and "peer error: " in s.err, s.err


@pytest.mark.parametrize("lie", ["hostile-error", "malformed-error"])
def test_c17_a_peer_error_text_is_shown_escaped_on_one_bounded_line(env: dict[str, str], tmp_path: Path,
                                                                  outdir: Path, lie: str) -> None:
    """The sender's Error text reaches the receiver's terminal escaped (no escape sequence, no
    carriage return, no bidi override), truncated, on the one error line; nothing is committed."""
    sender = spawn(["send", str(tmp_path)], env, main=["-m", "tests.cli.lying_sender", "--lie", lie, "--"])
    try:
        r = finish(spawn(["receive", "-output", str(outdir), read_code(sender)], env), timeout=90)
    finally:
        finish(sender, timeout=90)
    assert r.rc == ExitStatus.TRANSFER, r.err
    for raw in ("\x1b", "\r", "\x07", "\u202e"):
        assert raw not in r.err, (raw, r.err)
    errors = [line for line in r.err.splitlines() if line.startswith("sp2p: error: ")]
    assert len(errors) == 1 and "pwned" in errors[0] and len(errors[0]) <= 500, r.err
    assert "Traceback" not in r.err and list(outdir.iterdir()) == []


def test_the_lying_sender_announces_what_it_sends() -> None:
    """Guards the tests above: the payload it sends is what its Metadata announces."""
    from tests.cli.lying_sender import CONTENT, payload

    meta, body = payload(folder=False)
    assert meta.size == len(body) == len(CONTENT) and meta.name == "lie.bin"
    meta, body = payload(folder=True)
    assert meta.is_folder and meta.size == len(body) and body.startswith(b"lie/")

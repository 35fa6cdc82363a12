"""`sp2p receive` without a code asks for it on the terminal without echo. The user cannot see
what went in (a paste with the sentence's full stop, a half-copied link), so a code that is not one
is explained and asked for again; it used to end the run at the first slip."""

from __future__ import annotations

from pathlib import Path

from sp2p.cli import CODE_PROMPTS
from sp2p.status import ExitStatus
from tests.e2e.harness import finish, read_code, spawn
from tests.e2e.ptyrun import finish_tty, spawn_tty

PROMPT = "Transfer code or share URL"


def test_a_mistyped_code_is_asked_for_again_and_the_next_one_works(env: dict[str, str], tmp_path: Path,
                                                                   outdir: Path) -> None:
    src = tmp_path / "again.txt"
    src.write_text("second time lucky")
    sender = spawn(["send", str(src)], env)
    try:
        code = read_code(sender)
        child = spawn_tty(["receive", "-yes", "-output", str(outdir)], env)
        child.expect(PROMPT)
        child.sendline(code + ".")  # copied with the full stop after it
        child.expect(r"'\.' in the part after '-' is not a letter or digit; try again")
        child.expect(PROMPT)
        child.sendline(code)
        rc, rest = finish_tty(child)
    finally:
        s = finish(sender)
    assert (rc, s.rc) == (0, 0), rest + s.err
    assert (outdir / "again.txt").read_text() == "second time lucky"
    assert code.split("-")[1] not in (child.before or "") + rest  # still never echoed


def test_the_prompt_gives_up_after_three_slips_and_on_an_empty_answer(env: dict[str, str],
                                                                     outdir: Path) -> None:
    child = spawn_tty(["receive", "-output", str(outdir)], env)
    for _ in range(CODE_PROMPTS):
        child.expect(PROMPT)
        child.sendline("not-a-code")
    rc, rest = finish_tty(child)
    assert rc == ExitStatus.USAGE, rest
    assert rest.count("sp2p: error: ") == 1 and "invalid transfer code" in rest, rest
    assert "Traceback" not in rest
    child = spawn_tty(["receive", "-output", str(outdir)], env)
    child.expect(PROMPT)
    child.sendline("nope")
    child.expect("try again")
    child.expect(PROMPT)
    child.sendline("")
    rc, rest = finish_tty(child)
    assert rc == ExitStatus.USAGE and "expected exactly one transfer code" in rest, rest

"""Questions on the controlling terminal (sp2p/term/prompts.py), asked through a real pty.

The relay question lives with the other prompts; flow/ receives it injected and never opens
the terminal device itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]
ASK = "from sp2p.term.prompts import ask_relay_consent; print('answer', ask_relay_consent())"


def _ask(env: dict[str, str]) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-c", ASK], env=env, cwd=str(ROOT), timeout=30, encoding="utf-8")
    child.expect_exact("Allow relay? [y/N] ")
    return child


@pytest.fixture
def env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TERM": "dumb"}


@pytest.mark.parametrize(("typed", "expected"), [("y", "True"), ("yes", "True"), ("n", "False"), ("", "False")])
def test_relay_question_answers(env: dict[str, str], typed: str, expected: str) -> None:
    child = _ask(env)
    assert "A TURN relay is available" in (child.before or "")
    child.sendline(typed)
    child.expect(r"answer (True|False)")
    assert child.match.group(1) == expected
    child.expect(pexpect.EOF)


def test_relay_question_asks_again_then_ctrl_d_says_no(env: dict[str, str]) -> None:
    child = _ask(env)
    child.sendline("maybe")
    child.expect_exact("Please answer y or n.")
    child.expect_exact("Allow relay? [y/N] ")
    child.sendeof()
    child.expect(r"answer (True|False)")
    assert child.match.group(1) == "False"
    child.expect(pexpect.EOF)


def test_no_terminal_means_no(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ASK], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL, start_new_session=True,  # no controlling terminal
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answer False"


def test_flow_never_opens_the_terminal() -> None:
    """Questions reach flow/ as callables (tested above and in the CLI), never as /dev/tty opens."""
    offenders = [p.name for p in (ROOT / "sp2p" / "flow").glob("*.py") if "/dev/tty" in p.read_text()]
    assert offenders == []

"""The README's first command, as printed, from scratch (issue 14 item 8): the system Python
(/usr/bin/python3, Debian's), nothing preinstalled, a fresh copy of the checkout, PyPI for the
dependencies, until the server answers.

The `sudo apt-get install` line is not run (tests do not install system packages); the test
checks the state it establishes instead: Debian's python3-venv is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.dist.helpers import REPO_ROOT
from tests.support.ports import free_port

SYSTEM_PYTHON = Path("/usr/bin/python3")


def first_commands() -> list[str]:
    """The first indented code block of the README, one command line per entry."""
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"\n\n((?: {4}\S.*\n)+)", text)
    assert match, "no code block in the README"
    return [line[4:].split("  #", 1)[0].strip() for line in match.group(1).splitlines()]


@pytest.mark.slow
def test_readme_first_command_runs_on_a_fresh_debian(tmp_path: Path) -> None:
    commands = first_commands()
    assert commands[0] == "sudo apt-get install -y python3-venv", commands
    assert subprocess.run(["dpkg", "-s", "python3-venv"], capture_output=True).returncode == 0
    install = commands[1]
    assert install.startswith("python3 -m venv ") and install.endswith("sp2p-server"), install
    version = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "True"  # the README's promise: Python >= 3.11

    checkout = tmp_path / "sp2p"
    shutil.copytree(REPO_ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "build", "dist", "*.egg-info", ".mypy_cache", ".ruff_cache",
        "test-artifacts", "node_modules", ".pytest_cache", ".hypothesis"))
    port = free_port()
    env = {
        "PATH": f"{SYSTEM_PYTHON.parent}:/bin",  # the system Python first: no pyenv, no venv
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "SP2P_ADDR": f"127.0.0.1:{port}",  # every server flag reads SP2P_<NAME>; keeps :8080 free
    }
    log = tmp_path / "log.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", "-c", install], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 1200  # downloads the dependencies from PyPI
        answer = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    answer = resp.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert answer == "ok", f"exit {proc.poll()}:\n{log.read_text()[-4000:]}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert "SP2P" in resp.read().decode()  # the web UI came with the install
        venv_python = checkout / ".venv" / "bin" / "python"
        assert venv_python.resolve().parent == SYSTEM_PYTHON.resolve().parent  # built from the system Python
        assert (checkout / ".venv" / "bin" / "sp2p").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_readme_screenshots_exist() -> None:
    """Every image the README shows is committed (scripts/screenshots.py makes them)."""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (REPO_ROOT / "README.md").read_text())
    assert len(images) >= 6
    for image in images:
        data = (REPO_ROOT / image).read_bytes()
        assert data.startswith(b"\x89PNG"), image

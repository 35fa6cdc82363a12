"""The update notice (issue 14 item 9): a server announcing a newer release gets one line with
the upgrade command, on both sides; an equal, older or `dev` version gets none."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sp2p import __version__
from sp2p.update import is_newer, parse_version, update_notice
from tests.e2e.harness import REPO, cli_env, transfer
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server

pytestmark = pytest.mark.e2e


def test_version_rules() -> None:
    assert parse_version("v1.2.3-rc1") == (1, 2, 3)
    assert parse_version("dev") is None and parse_version("1.2") is None
    assert is_newer("0.3.1", "0.3.0") and is_newer("v1.0.0", "0.9.9")
    assert not is_newer("0.3.0", "0.3.0") and not is_newer("0.2.9", "0.3.0")
    assert not is_newer("dev", "0.3.0") and not is_newer("9.9.9", "dev")
    # the server's text never reaches the terminal, only the parsed numbers
    line = update_notice("9.9.9-\x1b]0;pwned\x07", "https://sp2p.example")
    assert line is not None and "\x1b" not in line and "→ 9.9.9 (upgrade: " in line


def test_a_newer_server_gets_one_line_with_the_upgrade_command(tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    for part in ("sp2p", "server", "static"):
        shutil.copytree(REPO / part, newer / part, ignore=shutil.ignore_patterns("__pycache__"))
    init = newer / "sp2p" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', '"9.9.9"'))
    server = start_server(*NO_LIMIT_FLAGS, env={"PYTHONPATH": str(newer)}, cwd=newer)
    try:
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        env = cli_env(server.http_url, home)
        src = tmp_path / "n.txt"
        src.write_text("n")
        out = tmp_path / "out"
        out.mkdir()
        s, r = transfer([str(src)], ["-output", str(out)], env)
    finally:
        server.stop()
    assert (s.rc, r.rc) == (0, 0), s.err + r.err
    for err in (s.err, r.err):
        lines = [line.strip() for line in err.splitlines() if "Update available" in line]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"Update available: {__version__} → 9.9.9 (upgrade: ")
        # run from a checkout (PYTHONPATH) or a pip install: a command for that, not a guess
        assert any(word in lines[0] for word in ("git -C", "pip install", "pipx", "install.sh")), lines[0]


def test_the_same_version_gets_none(env: dict[str, str], tmp_path: Path, outdir: Path) -> None:
    src = tmp_path / "same.txt"
    src.write_text("s")
    s, r = transfer([str(src)], ["-output", str(outdir)], env)
    assert (s.rc, r.rc) == (0, 0)
    assert "Update available" not in s.err + r.err

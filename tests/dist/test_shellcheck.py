"""Every shell script in the repository is shellcheck-clean (Debian `shellcheck`)."""

from __future__ import annotations

import subprocess

from tests.dist.helpers import REPO_ROOT


def shell_scripts() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.sh"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(set(tracked) | {"install.sh", "server/bootstrap/sp2p.sh"})


def test_shellcheck_passes_on_every_shell_script() -> None:
    scripts = shell_scripts()
    assert "scripts/build_binary.sh" in scripts
    result = subprocess.run(
        ["shellcheck", "--external-sources", *scripts],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bootstrap_scripts_are_posix_sh() -> None:
    """They run under `sh` (dash here, busybox ash or macOS sh elsewhere)."""
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "server/bootstrap/sp2p.sh", "install.sh"],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout

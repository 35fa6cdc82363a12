"""install.sh: per-user install of the verified binary from a server's /dl, and uninstall."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import sp2p
from tests.dist.helpers import FAKE_CLI, REPO_ROOT, publish, script_env
from tests.support.server_proc import ServerProc, start_server

INSTALL = REPO_ROOT / "install.sh"


def install(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = script_env(home / "tmp", {"HOME": str(home), "PATH": os.environ["PATH"]})
    env.pop("XDG_DATA_HOME", None)
    return subprocess.run(
        ["sh", str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=120,
        input=stdin, cwd=home,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "tmp").mkdir()
    return tmp_path


def test_installs_the_verified_binary_into_local_bin(
    dl_server: ServerProc, dl_dir: Path, home: Path
) -> None:
    publish(dl_dir, FAKE_CLI.encode())
    result = install("--base", dl_server.http_url, home=home)
    assert result.returncode == 0, result.stderr
    binary = home / ".local/bin/sp2p"
    assert binary.read_bytes() == FAKE_CLI.encode()
    assert binary.stat().st_mode & 0o777 == 0o755
    assert "Installed sp2p 9.9.9-fake to" in result.stderr
    assert "is not on your PATH" in result.stderr
    assert [p.name for p in (home / ".local/bin").iterdir()] == ["sp2p"]  # no leftovers

    result = install("--uninstall", home=home)
    assert result.returncode == 0, result.stderr
    assert not binary.exists()


def test_tampered_download_leaves_the_existing_install_alone(
    dl_server: ServerProc, dl_dir: Path, home: Path
) -> None:
    bin_dir = home / ".local/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sp2p").write_text("previous version")
    publish(dl_dir, b"#!/bin/sh\necho evil\n", checksum_of=FAKE_CLI.encode())
    result = install("--base", dl_server.http_url, home=home)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr
    assert "nothing installed" in result.stderr
    assert (bin_dir / "sp2p").read_text() == "previous version"
    assert sorted(p.name for p in bin_dir.iterdir()) == ["sp2p"]
    assert list((home / "tmp").iterdir()) == []


def test_needs_a_source_and_refuses_plain_http(home: Path) -> None:
    result = install(home=home)
    assert result.returncode == 1
    assert "--base URL" in result.stderr and "--from-source" in result.stderr
    result = install("--base", "http://downloads.invalid", home=home)
    assert result.returncode == 1
    assert "refusing to download over plain http" in result.stderr
    result = install("--bogus", home=home)
    assert result.returncode == 1
    assert "unknown option: --bogus" in result.stderr
    assert not (home / ".local").exists()


def test_from_source_needs_a_checkout(home: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone-install.sh"
    lone.write_bytes(INSTALL.read_bytes())
    env = script_env(home / "tmp", {"HOME": str(home)})
    result = subprocess.run(["sh", str(lone), "--from-source"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "--from-source needs a checkout" in result.stderr


@pytest.mark.slow
def test_installs_the_real_release_binary(release_dir: Path, home: Path) -> None:
    with start_server("-dl-dir", str(release_dir)) as server:
        result = install("--base", server.http_url, "--bin-dir", str(home / "bin"), home=home)
    assert result.returncode == 0, result.stderr
    out = subprocess.run([str(home / "bin/sp2p"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"sp2p {sp2p.__version__}"
    assert f"Installed sp2p {sp2p.__version__} to {home / 'bin'}/sp2p" in result.stderr

"""Fixtures of the distribution tests.

`frozen_binary` runs the real PyInstaller build once per test session (~20 s) and
`release_dir` turns it into the release files with scripts/build_packages.sh; every slow
test shares them. `dl_server` is a real sp2p-server serving `/dl/` from a directory the
test fills.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import sp2p
from tests.dist.container.fixtures import container_ns, container_worker, pod, prepared  # noqa: F401
from tests.dist.helpers import FAKE_CLI, REPO_ROOT, publish
from tests.support.server_proc import ServerProc, start_server

RELEASE_BASE = f"https://downloads.example.org/sp2p/v{sp2p.__version__}"
#: stand-ins for the SHA256SUMS of the builds made on other machines (macOS, Windows, arm64)
OTHER_PLATFORMS = {
    name: hashlib.sha256(name.encode()).hexdigest()
    for name in ("sp2p-darwin-arm64", "sp2p-darwin-amd64", "sp2p-linux-arm64",
                 "sp2p-windows-amd64.exe", "sp2p-windows-arm64.exe")
}


@pytest.fixture(scope="session")
def frozen_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file sp2p binary, built from this checkout and self-checked."""
    out = tmp_path_factory.mktemp("pyinstaller")
    result = subprocess.run(
        ["bash", "scripts/build_binary.sh", "--dist", str(out / "dist"),
         "--work", str(out / "work"), "--no-measure"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"build failed:\n{result.stderr[-6000:]}"
    assert "selfcheck: ok" in result.stderr, result.stderr[-3000:]
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file()
    return binary


@pytest.fixture(scope="session")
def release_dir(frozen_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/build_packages.sh output for the frozen binary: deb, rpm, tarballs, sums, and
    the manifests rendered with stand-in checksums for the other platforms."""
    out = tmp_path_factory.mktemp("release")
    other = tmp_path_factory.mktemp("other-platforms") / "SHA256SUMS"
    other.write_text("".join(f"{digest}  {name}\n" for name, digest in OTHER_PLATFORMS.items()))
    result = subprocess.run(
        ["bash", "scripts/build_packages.sh", "--binary", str(frozen_binary),
         "--out", str(out), "--release-base", RELEASE_BASE, "--sums", str(other)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"build_packages failed:\n{result.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def dl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dl")


@pytest.fixture(scope="module")
def dl_server(dl_dir: Path) -> Iterator[ServerProc]:
    """A real sp2p-server whose /dl/ serves the files in `dl_dir`."""
    with start_server("-dl-dir", str(dl_dir)) as server:
        yield server


@pytest.fixture
def fake_cli(dl_dir: Path) -> bytes:
    content = FAKE_CLI.encode()
    publish(dl_dir, content)
    return content


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    paths = {"tmp": tmp_path / "tmp", "cwd": tmp_path / "cwd", "log": tmp_path / "fake.log"}
    paths["cwd"].mkdir()
    paths["tmp"].mkdir()
    return paths

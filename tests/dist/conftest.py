"""Fixtures of the distribution tests.

`frozen_binary` runs the real PyInstaller build once per test session (~20 s of one core) and
`release_dir` turns it into the release files with scripts/build_packages.sh; every slow
test shares them. The build starts as soon as collection shows a selected test needs it, so it
runs while other tests do; under pytest-xdist one worker builds for all
(tests/support/run_once.py).
`dl_server` is a real sp2p-server serving `/dl/` from a directory the test fills.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import sp2p
from tests.dist.container.fixtures import container_ns, container_worker, pod, prepared  # noqa: F401
from tests.dist.helpers import FAKE_CLI, REPO_ROOT, publish
from tests.support.run_once import RunOnce
from tests.support.server_proc import ServerProc, start_server

RELEASE_BASE = f"https://downloads.example.org/sp2p/v{sp2p.__version__}"
#: stand-ins for the SHA256SUMS of the builds made on other machines (macOS, Windows, arm64)
OTHER_PLATFORMS = {
    name: hashlib.sha256(name.encode()).hexdigest()
    for name in ("sp2p-darwin-arm64", "sp2p-darwin-amd64", "sp2p-linux-arm64",
                 "sp2p-windows-amd64.exe", "sp2p-windows-arm64.exe")
}


#: the fixtures that need the PyInstaller build
NEEDS_BUILD = {"frozen_binary", "release_dir"}


def pyinstaller_build(config: pytest.Config) -> RunOnce:
    """scripts/build_binary.sh, once for the whole run however many xdist workers need it."""
    return RunOnce.of(config, "pyinstaller")


def start_build(config: pytest.Config) -> None:
    job = pyinstaller_build(config)
    job.claim(["bash", "scripts/build_binary.sh", "--dist", str(job.dir / "dist"),
               "--work", str(job.dir / "work"), "--no-measure"], cwd=REPO_ROOT)  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The container tests share one podman image, built once and removed at the end by the
    session fixtures in tests/dist/container/fixtures.py: one xdist worker runs them all."""
    for item in items:
        if "prepared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("podman"))


def pytest_collection_finish(session: pytest.Session) -> None:
    # every xdist worker collects every test: the first one to get here builds for all
    if any(NEEDS_BUILD & set(getattr(item, "fixturenames", ())) for item in session.items):
        start_build(session.config)


@pytest.fixture(scope="session")
def frozen_binary(request: pytest.FixtureRequest) -> Path:
    """The single-file sp2p binary, built from this checkout and self-checked."""
    start_build(request.config)  # already started at collection, unless run on its own
    returncode, stdout, stderr = pyinstaller_build(request.config).wait(timeout=600)
    assert returncode == 0, f"build failed (exit {returncode}):\n{stderr[-6000:]}"
    assert "selfcheck: ok" in stderr, stderr[-3000:]
    binary = Path(stdout.strip().splitlines()[-1])
    assert binary.is_file()
    return binary


@pytest.fixture(scope="session")
def release_dir(frozen_binary: Path, request: pytest.FixtureRequest) -> Path:
    """scripts/build_packages.sh output for the frozen binary: deb, rpm, tarballs, sums, and
    the manifests rendered with stand-in checksums for the other platforms (read only: every
    xdist worker of the run shares them)."""
    job = RunOnce.of(request.config, "release")
    out, other = job.dir / "out", job.dir / "other-platforms-SHA256SUMS"
    job.claim(["bash", "scripts/build_packages.sh", "--binary", str(frozen_binary), "--out", str(out),
               "--release-base", RELEASE_BASE, "--sums", str(other)], cwd=REPO_ROOT,
              inputs={other.name: "".join(f"{digest}  {name}\n" for name, digest in OTHER_PLATFORMS.items())})
    returncode, _, stderr = job.wait(timeout=300)
    assert returncode == 0, f"build_packages failed:\n{stderr[-6000:]}"
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

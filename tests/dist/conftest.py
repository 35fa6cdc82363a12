"""Fixtures of the distribution tests.

`frozen_binary` runs the real PyInstaller build once per test session (~20 s of one core) and
`release_dir` turns it into the release files with scripts/build_packages.sh; every slow
test shares them. The build starts as soon as collection shows a selected test needs it, so it
runs while the tests before tests/dist (cli, core: mostly waiting on their peers) do.
`dl_server` is a real sp2p-server serving `/dl/` from a directory the test fills.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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


#: the fixtures that need the PyInstaller build
NEEDS_BUILD = {"frozen_binary", "release_dir"}


@dataclass
class Build:
    """scripts/build_binary.sh running into `out`, its output in files (a pipe nobody reads
    while the build runs could fill up and stall it)."""

    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def start(cls, out: Path) -> Build:
        with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
            proc = subprocess.Popen(
                ["bash", "scripts/build_binary.sh", "--dist", str(out / "dist"),
                 "--work", str(out / "work"), "--no-measure"],
                cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        return cls(proc, out)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr); killed after `timeout` s."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.proc.returncode, (self.out / "stdout").read_text(), (self.out / "stderr").read_text()

    def stop(self) -> None:
        """Kills the script and PyInstaller under it (their own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


_early_build = pytest.StashKey[Build]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(NEEDS_BUILD & set(getattr(item, "fixturenames", ())) for item in session.items):
        session.config.stash[_early_build] = Build.start(Path(tempfile.mkdtemp(prefix="sp2p-pyinstaller-")))


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(_early_build, None)
    if build is not None:  # a run that ended before it needed the build: nothing left behind
        build.stop()
        shutil.rmtree(build.out, ignore_errors=True)


@pytest.fixture(scope="session")
def frozen_binary(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-file sp2p binary, built from this checkout and self-checked."""
    build = request.config.stash.get(_early_build, None) or Build.start(tmp_path_factory.mktemp("pyinstaller"))
    returncode, stdout, stderr = build.finish(timeout=600)
    assert returncode == 0, f"build failed (exit {returncode}):\n{stderr[-6000:]}"
    assert "selfcheck: ok" in stderr, stderr[-3000:]
    binary = Path(stdout.strip().splitlines()[-1])
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

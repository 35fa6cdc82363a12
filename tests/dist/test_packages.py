"""Release files from scripts/build_packages.sh: deb, rpm, tarball, checksums, manifests."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import sp2p
from tests.dist.conftest import OTHER_PLATFORMS, RELEASE_BASE
from tests.dist.helpers import REPO_ROOT, platform_asset

pytestmark = pytest.mark.slow

VERSION = sp2p.__version__


def run(*cmd: str, cwd: Path | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
    return result.stdout


def one(release_dir: Path, pattern: str) -> Path:
    found = sorted(release_dir.glob(pattern))
    assert len(found) == 1, (pattern, sorted(p.name for p in release_dir.iterdir()))
    return found[0]


def test_checksums_cover_every_artifact(release_dir: Path) -> None:
    run("sha256sum", "--check", "--strict", "SHA256SUMS", cwd=release_dir)
    listed = {line.split()[1] for line in (release_dir / "SHA256SUMS").read_text().splitlines()}
    files = {p.name for p in release_dir.iterdir() if p.is_file()}
    assert {f"sp2p_{VERSION}_amd64.deb", f"sp2p-{VERSION}-1.x86_64.rpm", platform_asset(),
            "sp2p_linux_amd64.tar.gz", f"sp2p-{VERSION}.tar.gz"} <= listed
    assert listed == files - {"SHA256SUMS", f"{platform_asset()}.sha256"}


def test_deb_installs_and_runs(release_dir: Path, tmp_path: Path) -> None:
    deb = one(release_dir, "sp2p_*.deb")
    assert deb.name == f"sp2p_{VERSION}_amd64.deb"
    fields = run("dpkg-deb", "--field", str(deb))
    assert f"Version: {VERSION}" in fields
    assert re.search(r"^Depends: libc6 \(>= 2\.\d+\), zlib1g$", fields, re.M)
    contents = run("dpkg-deb", "--contents", str(deb))
    assert "./usr/bin/sp2p" in contents
    assert "./usr/share/man/man1/sp2p.1.gz" in contents
    assert "sp2p-server.1" not in contents  # the CLI package ships only the CLI's page
    assert all(" root/root " in line for line in contents.splitlines())

    # Unpack into a throwaway root, as dpkg would, and run what it installed.
    root = tmp_path / "root"
    run("dpkg-deb", "--extract", str(deb), str(root))
    binary = root / "usr/bin/sp2p"
    assert binary.stat().st_mode & 0o777 == 0o755
    assert run(str(binary), "--version").strip() == f"sp2p {VERSION}"
    man = gzip.decompress((root / "usr/share/man/man1/sp2p.1.gz").read_bytes()).decode()
    assert f'"sp2p {VERSION}"' in man.splitlines()[next(
        i for i, line in enumerate(man.splitlines()) if line.startswith(".TH"))]


def test_deb_passes_dpkg_install_into_a_scratch_root(release_dir: Path, tmp_path: Path) -> None:
    """`dpkg --root` with its own empty database: the package's metadata is installable."""
    deb = one(release_dir, "sp2p_*.deb")
    root = tmp_path / "dpkgroot"
    admin = root / "var/lib/dpkg"
    (admin / "info").mkdir(parents=True)
    (admin / "updates").mkdir()
    (admin / "status").write_text("")
    (admin / "available").write_text("")
    result = subprocess.run(
        ["dpkg", f"--root={root}", "--force-depends", "--force-not-root",
         "--force-script-chrootless", "--log=/dev/null", "--install", str(deb)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status = (admin / "status").read_text()
    assert "Package: sp2p" in status and "Status: install ok installed" in status
    assert run(str(root / "usr/bin/sp2p"), "--version").strip() == f"sp2p {VERSION}"


def test_rpm_metadata_digests_and_payload(release_dir: Path, tmp_path: Path) -> None:
    rpm = one(release_dir, "sp2p-*.rpm")
    assert rpm.name == f"sp2p-{VERSION}-1.x86_64.rpm"
    info = run("rpm", "-qip", str(rpm))
    assert re.search(rf"^Version\s*: {re.escape(VERSION)}$", info, re.M)
    assert re.search(r"^License\s*: MIT$", info, re.M)
    checked = run("rpm", "-K", "--nosignature", str(rpm))
    assert "digests OK" in checked
    files = run("rpm", "-qlp", str(rpm)).split()
    assert files == ["/usr/bin/sp2p", "/usr/share/licenses/sp2p/copyright",
                     "/usr/share/man/man1/sp2p.1"]  # no .build-id links to collide on
    requires = run("rpm", "-qRp", str(rpm))
    assert "libc.so.6" in requires and "libz.so.1" in requires

    # rpm2cpio payload: the binary survived rpmbuild unstripped and runs.
    payload = tmp_path / "rpmroot"
    payload.mkdir()
    cpio = subprocess.run(["rpm2cpio", str(rpm)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=cpio, cwd=payload, check=True)
    assert run(str(payload / "usr/bin/sp2p"), "--version").strip() == f"sp2p {VERSION}"


def test_upstream_compatible_tarball(release_dir: Path) -> None:
    """`/dl/linux/amd64` serves sp2p_linux_amd64.tar.gz with one top-level `sp2p`."""
    with tarfile.open(one(release_dir, "sp2p_linux_amd64.tar.gz")) as tar:
        members = tar.getmembers()
    assert [(m.name, m.isfile(), m.mode) for m in members] == [("sp2p", True, 0o755)]
    assert members[0].size == (release_dir / platform_asset()).stat().st_size


def test_source_tarball_has_the_package(release_dir: Path) -> None:
    with tarfile.open(one(release_dir, f"sp2p-{VERSION}.tar.gz")) as tar:
        names = tar.getnames()
    prefix = f"sp2p-{VERSION}/"
    assert prefix + "pyproject.toml" in names
    assert prefix + "sp2p/cli.py" in names
    assert prefix + "packaging/man/sp2p.1" in names


def test_manifests_render_with_every_platforms_checksums(release_dir: Path) -> None:
    fake, base, out = OTHER_PLATFORMS, RELEASE_BASE, release_dir
    ours = {line.split()[1]: line.split()[0]
            for line in (out / "SHA256SUMS").read_text().splitlines()}

    formula = (out / "manifests/sp2p.rb").read_text()
    assert "@@" not in formula
    assert f'version "{VERSION}"' in formula
    for name in ("sp2p-darwin-arm64", "sp2p-darwin-amd64", "sp2p-linux-arm64"):
        assert f'url "{base}/{name}"\n      sha256 "{fake[name]}"' in formula
    assert f'url "{base}/sp2p-linux-amd64"\n      sha256 "{ours["sp2p-linux-amd64"]}"' in formula

    scoop = json.loads((out / "manifests/sp2p.json").read_text())
    assert scoop["version"] == VERSION
    assert scoop["architecture"]["64bit"] == {
        "url": f"{base}/sp2p-windows-amd64.exe#/sp2p.exe", "hash": fake["sp2p-windows-amd64.exe"]}
    assert scoop["bin"] == "sp2p.exe"

    apkbuild = (out / "manifests/APKBUILD").read_text()
    assert f"pkgver={VERSION}\n" in apkbuild
    sha512 = hashlib.sha512((out / f"sp2p-{VERSION}.tar.gz").read_bytes()).hexdigest()
    assert f"{sha512}  $pkgname-$pkgver.tar.gz" in apkbuild
    # an APKBUILD is sourced by abuild's shell: it must at least parse
    subprocess.run(["sh", "-n", str(out / "manifests/APKBUILD")], check=True)


def test_manifests_are_skipped_rather_than_rendered_half(
    release_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(release_dir / "SHA256SUMS", out / "SHA256SUMS")
    result = subprocess.run(
        ["bash", "scripts/build_packages.sh", "--manifests-only", "--out", str(out),
         "--release-base", "https://downloads.example.org/sp2p"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped sp2p.rb: no checksum for sp2p-darwin-arm64" in result.stderr
    assert "skipped APKBUILD: no checksum for sp2p-" in result.stderr  # no source tarball
    assert not (out / "manifests/sp2p.rb").exists()
    assert not (out / "manifests/sp2p.json").exists()
    assert not (out / "manifests/APKBUILD").exists()

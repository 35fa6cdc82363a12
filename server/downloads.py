"""`/dl/...`: CLI binaries and packages, redirected or served from a local directory.

What is served (every name must start with `sp2p`, contain no `..`, `/` or `\\`):

* `/dl/<os>/<arch>` (os linux|darwin|windows, arch amd64|arm64) — upstream's tarball
  route: the asset `sp2p_<os>_<arch>.tar.gz` (`.zip` for windows).
* `/dl/<file>` where `<file>` is
  - an archive or package: `*.tar.gz`, `*.zip`, `*.deb`, `*.rpm`, `*.apk`;
  - a single-file binary `sp2p-<os>-<arch>` or `sp2p-<os>-<arch>.exe` (what the
    bootstrap scripts download);
  - `<one of the above>.sha256`: `"<64 hex>  <file>\\n"` (sha256sum format);
* `/dl/checksums.txt`: sha256sum lines for every asset.

Without `-dl-dir` every valid name is a 302 to `<dl-url>/<file>` (default: the upstream
GitHub "latest" release). With `-dl-dir DIR` files come from DIR itself: 404 if absent;
`<file>.sha256` is read from DIR when present, otherwise computed from `<file>` (cached by
size and mtime); `checksums.txt` likewise. The server never serves its own executable
(upstream W-18).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

OSES = ("linux", "darwin", "windows")
ARCHES = ("amd64", "arm64")
ARCHIVE_SUFFIXES = (".tar.gz", ".zip", ".deb", ".rpm", ".apk")
CHECKSUMS = "checksums.txt"
_BINARY = re.compile(r"sp2p(?:-server)?-(?:linux|darwin|windows)-(?:amd64|arm64)(?:\.exe)?")


# What to answer, one small frozen record per kind: the HTTP layer matches on the type
# (the same shape as relay.py's actions, by design: typed results instead of tuples).
@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class SendFile:
    path: Path


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class Problem:
    status: int
    message: str


Answer = Redirect | SendFile | SendText | Problem


def asset_kind(name: str) -> str | None:
    """'asset', 'checksum' (of an asset), 'checksums' or None (not servable)."""
    if name == CHECKSUMS:
        return "checksums"
    if not name.startswith("sp2p") or ".." in name or "/" in name or "\\" in name:
        return None
    base = name.removesuffix(".sha256")
    if base.endswith(ARCHIVE_SUFFIXES) or _BINARY.fullmatch(base):
        return "checksum" if base != name else "asset"
    return None


class Downloads:
    def __init__(self, *, dl_dir: Path | None, dl_url: str) -> None:
        self._dir = dl_dir
        self._url = dl_url.rstrip("/")
        self._lock = threading.Lock()
        self._hashes: dict[Path, tuple[int, int, str]] = {}

    def resolve(self, rest: str) -> Answer:
        parts = rest.split("/")
        if len(parts) == 2:
            os_name, arch = parts
            if os_name not in OSES or arch not in ARCHES:
                return Problem(404, "unsupported platform")
            ext = "zip" if os_name == "windows" else "tar.gz"
            return self._file(f"sp2p_{os_name}_{arch}.{ext}")
        if len(parts) != 1 or not parts[0]:
            return Problem(400, "expected /dl/{os}/{arch} or /dl/{filename}")
        name = parts[0]
        if not name.startswith("sp2p") and name != CHECKSUMS or ".." in name or "\\" in name:
            return Problem(400, "invalid filename")
        if asset_kind(name) is None:
            return Problem(400, "unsupported file type")
        return self._file(name)

    def _file(self, name: str) -> Answer:
        if self._dir is None:
            return Redirect(f"{self._url}/{name}")
        path = self._dir / name
        if path.is_file():
            return SendFile(path)
        kind = asset_kind(name)
        if kind == "checksum":
            target = self._dir / name.removesuffix(".sha256")
            if target.is_file():
                return SendText(f"{self._sha256(target)}  {target.name}\n")
        elif kind == "checksums":
            lines = [
                f"{self._sha256(p)}  {p.name}\n"
                for p in sorted(self._dir.iterdir())
                if p.is_file() and asset_kind(p.name) == "asset"
            ]
            return SendText("".join(lines))
        return Problem(404, "404 page not found")

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        with self._lock:
            cached = self._hashes.get(path)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        hexdigest = digest.hexdigest()
        with self._lock:
            self._hashes[path] = (stat.st_size, stat.st_mtime_ns, hexdigest)
        return hexdigest

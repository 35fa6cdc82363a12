"""The update notice: one line when the server announces a newer release (client.md §5.5).

`welcome.serverVersion` is the latest release the server knows for our OS/arch (else its
own version). The notice names the upgrade command for the way this copy was installed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sp2p import __version__

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?")
#: where install.sh --from-source puts its venv, below $XDG_DATA_HOME (or ~/.local/share)
_INSTALL_SH_VENV = ("sp2p", "venv")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """MAJOR.MINOR.PATCH with an optional `v` and a suffix that is ignored; None otherwise
    (`dev` builds and anything unparseable never trigger a notice)."""
    match = _VERSION.fullmatch(text.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def is_newer(server: str, client: str = __version__) -> bool:
    theirs, ours = parse_version(server), parse_version(client)
    return theirs is not None and ours is not None and theirs > ours


def upgrade_command(base_url: str) -> str:
    """How to upgrade this copy: package manager, install script, pipx, pip or git."""
    if getattr(sys, "frozen", False):
        return _binary_command(Path(sys.executable).resolve(), base_url)
    prefix = Path(sys.prefix)
    if prefix.parts[-2:] == _INSTALL_SH_VENV:
        return "sh install.sh --from-source (from an updated checkout)"
    if "pipx" in prefix.parts:
        return "pipx upgrade sp2p"
    source = _pip_source()
    if source is not None:
        path, editable = source
        return f"git -C {path} pull" if editable else f"git -C {path} pull && pip install --upgrade {path}"
    return f"{Path(sys.executable).name} -m pip install --upgrade sp2p"


def _binary_command(exe: Path, base_url: str) -> str:
    text = str(exe)
    if "/Cellar/" in text or "/homebrew/" in text.lower():
        return "brew upgrade sp2p"
    if sys.platform == "win32" and "scoop" in text.lower():
        return "scoop update sp2p"
    if text.startswith("/usr/"):
        if Path("/var/lib/dpkg/info/sp2p.list").exists():
            return "sudo apt-get install --only-upgrade sp2p"
        if Path("/lib/apk/db/installed").exists():
            return "sudo apk upgrade sp2p"
        if Path("/var/lib/rpm").exists():
            return "sudo dnf upgrade sp2p"
    return f"sh install.sh --base {base_url}"


def _pip_source() -> tuple[str, bool] | None:
    """(directory, editable) when pip installed sp2p from a local checkout."""
    from importlib import metadata

    try:
        text = metadata.distribution("sp2p").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    url = str(data.get("url", ""))
    if not url.startswith("file://"):
        return None
    editable = bool(data.get("dir_info", {}).get("editable"))
    return unquote(urlsplit(url).path), editable


def update_notice(server_version: str, base_url: str) -> str | None:
    """The line to print, or None when the server is not strictly newer. The version came
    from the server: only its parsed numbers are printed."""
    theirs = parse_version(server_version or "")
    if theirs is None or not is_newer(server_version):
        return None
    shown = ".".join(map(str, theirs))
    return f"Update available: {__version__} → {shown} (upgrade: {upgrade_command(base_url)})"

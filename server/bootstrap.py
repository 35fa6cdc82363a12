"""The `curl | sh` and PowerShell bootstrap scripts, rendered with the server's base URL.

The scripts live in `server/bootstrap/` (owned by the distribution): `send.sh` (served at
`/`), `receive.sh` (`/r`), `send.ps1` (`/ps`), `receive.ps1` (`/ps/r`). Every
`@@SP2P_BASE_URL@@` becomes the base URL and every `@@SP2P_WS_URL@@` the WebSocket URL.
A missing script is replaced by a stub that says so and exits 1, so a half-installed
server never answers with something a shell would half-run.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from server.config import UNSAFE_URL_CHARS

BASE_PLACEHOLDER = "@@SP2P_BASE_URL@@"
WS_PLACEHOLDER = "@@SP2P_WS_URL@@"

SCRIPTS = {
    "send.sh": "sh",
    "receive.sh": "sh",
    "send.ps1": "ps1",
    "receive.ps1": "ps1",
}

_FALLBACK = {
    "sh": "#!/bin/sh\necho 'sp2p: bootstrap script not installed on this server' >&2\nexit 1\n",
    "ps1": "Write-Error 'sp2p: bootstrap script not installed on this server'\nexit 1\n",
}

#: a Host header we are willing to write into a script: name or [v6], optional port
_HOST = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63})*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)


def default_bootstrap_dir() -> Path:
    return Path(__file__).resolve().parent / "bootstrap"


class Bootstrap:
    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or default_bootstrap_dir()
        self.templates: dict[str, str] = {}
        self.installed: dict[str, bool] = {}
        for name, kind in SCRIPTS.items():
            try:
                self.templates[name] = (directory / name).read_text(encoding="utf-8")
                self.installed[name] = True
            except OSError:
                self.templates[name] = _FALLBACK[kind]
                self.installed[name] = False

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Bootstrap per app, few base URLs
    def render(self, name: str, base_url: str) -> str:
        ws_url = websocket_url(base_url)
        return self.templates[name].replace(BASE_PLACEHOLDER, base_url).replace(WS_PLACEHOLDER, ws_url)


def websocket_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://") + "/ws"
    return "ws://" + base_url.removeprefix("http://") + "/ws"


def safe_host(host: str) -> bool:
    return bool(_HOST.fullmatch(host)) and not (set(host) & UNSAFE_URL_CHARS)

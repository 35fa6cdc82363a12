"""The `curl | sh` and PowerShell bootstrap scripts, rendered with the server's base URL.

One template per shell lives in `server/bootstrap/` (owned by the distribution): `sp2p.sh`,
served as `send.sh` at `/` and `receive.sh` at `/r`, and `sp2p.ps1`, served as `send.ps1` at
`/ps` and `receive.ps1` at `/ps/r`. Every `@@SP2P_COMMAND@@` becomes the mode (send or
receive), every `@@SP2P_BASE_URL@@` the base URL and every `@@SP2P_WS_URL@@` the WebSocket
URL. A missing template is replaced by a stub that says so and exits 1, so a half-installed
server never answers with something a shell would half-run.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from server.config import UNSAFE_URL_CHARS

COMMAND_PLACEHOLDER = "@@SP2P_COMMAND@@"
BASE_PLACEHOLDER = "@@SP2P_BASE_URL@@"
WS_PLACEHOLDER = "@@SP2P_WS_URL@@"

#: served name -> (template, the CLI command it runs)
SCRIPTS = {
    "send.sh": ("sp2p.sh", "send"),
    "receive.sh": ("sp2p.sh", "receive"),
    "send.ps1": ("sp2p.ps1", "send"),
    "receive.ps1": ("sp2p.ps1", "receive"),
}

_FALLBACK = {
    "sp2p.sh": "#!/bin/sh\necho 'sp2p: bootstrap script not installed on this server' >&2\nexit 1\n",
    "sp2p.ps1": "Write-Error 'sp2p: bootstrap script not installed on this server'\nexit 1\n",
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
        #: template name -> its text (the stub when it is missing)
        self.templates: dict[str, str] = {}
        self.installed: dict[str, bool] = {}
        for template, stub in _FALLBACK.items():
            try:
                self.templates[template] = (directory / template).read_text(encoding="utf-8")
                self.installed[template] = True
            except OSError:
                self.templates[template] = stub
                self.installed[template] = False

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Bootstrap per app, few base URLs
    def render(self, name: str, base_url: str) -> str:
        """The script served as `name` (a key of SCRIPTS) for this base URL."""
        template, command = SCRIPTS[name]
        return (
            self.templates[template]
            .replace(COMMAND_PLACEHOLDER, command)
            .replace(BASE_PLACEHOLDER, base_url)
            .replace(WS_PLACEHOLDER, websocket_url(base_url))
        )


def websocket_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url.removeprefix("https://") + "/ws"
    return "ws://" + base_url.removeprefix("http://") + "/ws"


def safe_host(host: str) -> bool:
    return bool(_HOST.fullmatch(host)) and not (set(host) & UNSAFE_URL_CHARS)

"""Print the requirements of the sp2p-server container image, one per line.

The image installs the sp2p wheel with --no-deps plus this list: the package's dependencies
and its `server` extra, minus what only the CLI imports (WebRTC, UPnP, zstd, YAML config,
WebSocket client). A plain `pip install sp2p` still gets all of them; the server never
imports them, which tests/dist/test_container.py checks in the built image and
tests/dist/test_server_packaging.py checks on the host.

Usage: python packaging/server_requirements.py [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

#: distributions only the CLI needs (normalised names); aiortc brings PyAV, aioice, pylibsrtp
CLIENT_ONLY = frozenset({"aiortc", "miniupnpc", "zstandard", "pyyaml", "websocket-client"})

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalise(match.group(1))


def server_requirements(pyproject: dict[str, object]) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    own = normalise(str(project["name"]))
    wanted = [*project["dependencies"], *project["optional-dependencies"]["server"]]
    return [req for req in wanted if requirement_name(req) not in CLIENT_ONLY | {own}]


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    for requirement in server_requirements(tomllib.loads(path.read_text())):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

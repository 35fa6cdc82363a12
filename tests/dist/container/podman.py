"""podman and podman-compose inside a network namespace the test made.

Containers, their bridges and published ports all live in that namespace (only loopback and
podman's own bridges), so nothing the test starts is reachable from, or talks to, anything
else. `nsenter --net` is used rather than `ip netns exec`, which remounts /sys and hides the
cgroup hierarchy runc needs. Every podman command runs in the namespace, teardown included:
netavark removes its port rules from the namespace the command runs in.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTAINERS_CONF = Path(__file__).resolve().parent / "containers.conf"
COMPOSE_FILE = REPO_ROOT / "packaging" / "docker-compose.yml"
#: what scripts/test_container.sh builds (the name docker-compose.yml gives its image)
PROJECT_IMAGE = "localhost/sp2p-server:local"


def podman_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


class Podman:
    """podman commands run inside network namespace `ns`."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 120.0,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.ns}", *argv],
            capture_output=True, text=True, timeout=timeout, env=podman_env(), cwd=cwd or REPO_ROOT,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} -> {result.returncode}\n{result.stderr[-3000:]}")
        return result

    def podman(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        return self.run(["podman", *args], check=check, timeout=timeout).stdout.strip()

    def inspect(self, name: str, kind: str = "container") -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.podman(kind, "inspect", name))
        return data[0]


class Compose:
    """podman-compose on a compose file (packaging/docker-compose.yml) as project `project`."""

    def __init__(self, pod: Podman, project: str, env_file: Path, compose_file: Path = COMPOSE_FILE) -> None:
        self.pod = pod
        self.project = project
        self.env_file = env_file
        self.compose_file = compose_file

    def __call__(self, *args: str, check: bool = True, timeout: float = 180.0) -> str:
        argv = ["podman-compose", "-p", self.project, "-f", str(self.compose_file),
                "--env-file", str(self.env_file), *args]
        return self.pod.run(argv, check=check, timeout=timeout, cwd=self.compose_file.parent).stdout

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def containers(self) -> list[str]:
        out = self.pod.podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                              "--format", "{{.Names}}")
        return out.split()

    def volumes(self) -> list[str]:
        """Volumes mounted by the project's containers, anonymous ones (the image's VOLUME)
        included: `down -v` removes only the named ones."""
        names: list[str] = []
        for container in self.containers():
            mounts = self.pod.inspect(container)["Mounts"]
            names += [m["Name"] for m in mounts if m.get("Type") == "volume"]
        return names

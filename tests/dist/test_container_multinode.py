"""packaging/multinode/docker-compose.yml (Redis, two sp2p nodes, haproxy, coturn), built and
run with podman the same way as the single-node file (tests/dist/test_container.py): as its
header tells a self-hoster (`cp ../.env.example .env`, a fresh secret, `up -d`), inside the
container tests' network namespace, on stand-ins for redis and haproxy built from Debian's
packages (scripts/test_container.sh)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dist.container.fixtures import cli_transfer, compose_up, stop_cleanly
from tests.dist.container.podman import Compose, Podman
from tests.dist.helpers import REPO_ROOT
from tests.netlab.netns import NsWorker
from tests.web.cli import random_file

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(900)]

MULTINODE = REPO_ROOT / "packaging" / "multinode" / "docker-compose.yml"
NODES = ("sp2p-a", "sp2p-b")
#: podman-compose's stop: every container at once, so a node loses Redis while it shuts down
#: (Docker Compose stops dependents first, the easier case: tests/server/test_stop.py stops
#: nodes with Redis up)
STOP_STAGES = [{"haproxy", *NODES, "redis", "coturn"}]


@pytest.fixture(scope="module")
def multinode(pod: Podman, container_worker: NsWorker,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    with compose_up(pod, container_worker, MULTINODE, f"sp2ptest{os.getpid()}m",
                    tmp_path_factory.mktemp("multinode")) as stack:
        yield stack


def test_every_node_is_healthy_and_unprivileged(multinode: Compose, pod: Podman) -> None:
    for node in NODES:
        name = multinode.container(node)
        assert pod.run(["podman", "healthcheck", "run", name], check=False).returncode == 0, node
        assert pod.podman("exec", name, "id", "-u") == "10001"
        assert pod.inspect(name)["HostConfig"]["ReadonlyRootfs"] is True
    haproxy = pod.inspect(multinode.container("haproxy"))
    bindings = haproxy["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", "8080")]


def test_transfers_pair_across_nodes(multinode: Compose, pod: Podman, container_worker: NsWorker,
                                     tmp_path: Path) -> None:
    """haproxy deals connections round-robin, so a sender and its receiver land on different
    nodes and pair through Redis; several transfers in a row all succeed."""
    for i in range(3):
        src = random_file(tmp_path / f"payload{i}.bin", 1_000_000 + i)
        out = tmp_path / f"out{i}"
        out.mkdir()
        cli_transfer(container_worker, src, out)
        received = out / src.name
        assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_multinode_stops_cleanly(multinode: Compose, pod: Podman) -> None:
    """Last in the module: every container stops on SIGTERM within 2 s of its stage's stop
    command (no SIGKILL); down leaves nothing."""
    stop_cleanly(multinode, pod, STOP_STAGES, servers=set(NODES))

"""CLI <-> Chromium across nodes: the CLI on one sp2p-server node, the browser on another,
both nodes sharing sessions through a real redis-server (the cluster of
tests/server/test_multinode.py: three nodes, two workers each, haproxy, coturn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server.test_multinode import Cluster, cluster  # noqa: F401 - the module-scoped fixture
from tests.web.cli import Cli, browser_download, cli_send, random_file
from tests.web.flows import sha256_file, start_send, wait_outcome

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.slow]


def test_cli_and_chromium_on_different_nodes_both_ways(
    page: Any,
    cluster: Cluster,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    clis: list[Cli],
) -> None:
    node_a, node_b = cluster.nodes[0].http_url, cluster.nodes[1].http_url
    # CLI sends through node A; the browser's page, file-info fetch and WebSocket use node B
    src = random_file(tmp_path / "across.bin", 1 << 20)
    cli, code = cli_send(clis, node_a, src)
    saved, seen = browser_download(page, node_b, code, tmp_path)
    assert seen == "across.bin|1.0 MiB|across.bin"
    assert cli.wait(120) == 0, cli.output()
    assert sha256_file(saved) == sha256_file(src)
    # and back: the browser sends through node B, the CLI receives through node A
    back = random_file(tmp_path / "back.bin", (2 << 20) + 777)
    url = start_send(page, node_b, str(back))
    out = tmp_path / "out"
    out.mkdir()
    receiver = Cli("receive", "-server", node_a, "-output", str(out), url.split("#", 1)[1])
    clis.append(receiver)
    assert receiver.wait(120) == 0, receiver.output()
    assert wait_outcome(page) == "done"
    assert sha256_file(out / "back.bin") == sha256_file(back)

"""The container image and compose file, built and run with podman (scripts/test_container.sh).

`prepared` runs `scripts/test_container.sh prepare`: stand-in base images from Debian packages
(cached in podman's storage), then packaging/Dockerfile built unchanged. Everything runs in a
network namespace made here (loopback plus podman's bridges): the image on its own (slim,
unprivileged, read-only, health check, /dl/), then docker-compose.yml as the README tells a
self-hoster to run it (`cp .env.example .env`, a fresh secret, `up -d`), with CLI -> CLI and
CLI -> Chromium transfers through the containerised server, a TURN allocation at the
containerised coturn with credentials the server issued, and a clean stop.

Figures (image size, start time, stop time) go to test-artifacts/container/figures.txt.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.dist.container.fixtures import BASE, cli_transfer, compose_up, record, stop_cleanly, wait_healthy
from tests.dist.container.podman import COMPOSE_FILE, PROJECT_IMAGE, Compose, Podman
from tests.netlab.netns import NsWorker
from tests.server.helpers import close_code, hello, http_get, pair
from tests.web.browser import launch, new_context
from tests.web.cli import Cli, browser_download, random_file

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.browser, pytest.mark.timeout(900)]

#: what the CLI needs and the server never imports: none of it may be in the image
CLIENT_ONLY_MODULES = ("aiortc", "av", "aioice", "pylibsrtp", "miniupnpc", "zstandard", "yaml",
                       "websocket")
SOLO_PORT = 18080
GOING_AWAY = 1001
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)", "Accept": "text/html"}


# ---- the image on its own --------------------------------------------------------------------

def test_image_is_slim_and_runs_as_a_fixed_unprivileged_user(pod: Podman) -> None:
    image = pod.inspect(PROJECT_IMAGE, "image")
    record("image size", f"{image['Size'] / 1e6:.0f} MB")
    assert image["Config"]["User"] == "sp2p:sp2p"
    assert image["Healthcheck"]["Test"] == ["CMD", "python", "/usr/local/bin/sp2p-healthcheck"]
    probe = ("import importlib.util as u, sys; "
             f"print(' '.join(m for m in {CLIENT_ONLY_MODULES!r} if u.find_spec(m)))")
    found = pod.podman("run", "--rm", "--entrypoint", "python", PROJECT_IMAGE, "-c", probe)
    assert found == "", f"client-only modules in the server image: {found}"
    assert pod.podman("run", "--rm", "--entrypoint", "id", PROJECT_IMAGE) == \
        "uid=10001(sp2p) gid=10001(sp2p) groups=10001(sp2p)"


@pytest.fixture(scope="module")
def solo(pod: Podman, container_worker: NsWorker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image alone, read-only, with a CLI binary mounted on /srv/sp2p/dl. Yields its name."""
    dl = tmp_path_factory.mktemp("dl")
    dl.chmod(0o755)
    (dl / "sp2p-linux-amd64").write_bytes(b"#!/bin/sh\necho fake sp2p\n")
    name = f"sp2ptest{os.getpid()}-solo"
    start = time.monotonic()
    pod.podman("run", "-d", "--name", name, "--read-only", "--health-interval", "disable",
               "-p", f"127.0.0.1:{SOLO_PORT}:8080", "-e", f"SP2P_BASE_URL=http://127.0.0.1:{SOLO_PORT}",
               "-v", f"{dl}:/srv/sp2p/dl:ro", PROJECT_IMAGE)
    try:
        wait_healthy(container_worker, f"http://127.0.0.1:{SOLO_PORT}")
        record("start: podman run -> /health ok", f"{time.monotonic() - start:.2f} s")
        yield name
    finally:
        pod.podman("rm", "-f", "-v", "-t", "2", name, check=False)


def test_solo_serves_health_page_and_mounted_binaries(solo: str, container_worker: NsWorker) -> None:
    base = f"http://127.0.0.1:{SOLO_PORT}"
    status, _, body = container_worker.call(http_get, f"{base}/", BROWSER)
    assert status == 200 and b"<html" in body.lower()
    status, _, body = container_worker.call(http_get, f"{base}/")  # curl-like clients get the script
    assert status == 200 and body.startswith(b"#!/bin/sh")
    # SP2P_DL_DIR is set in the image: /dl/ serves the mount instead of redirecting
    status, _, body = container_worker.call(http_get, f"{base}/dl/sp2p-linux-amd64")
    assert (status, body) == (200, b"#!/bin/sh\necho fake sp2p\n")
    status, _, _ = container_worker.call(http_get, f"{base}/dl/sp2p-darwin-arm64")
    assert status == 404


def test_solo_health_check_user_and_read_only_root(solo: str, pod: Podman) -> None:
    assert pod.run(["podman", "healthcheck", "run", solo], check=False).returncode == 0
    assert pod.podman("exec", solo, "id", "-u") == "10001"
    denied = pod.run(["podman", "exec", solo, "touch", "/usr/local/x"], check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    # and fails when the server does not answer: its worker (every process but 1) frozen
    pod.podman("exec", solo, "sh", "-c", "kill -STOP -1")
    try:
        assert pod.run(["podman", "healthcheck", "run", solo], check=False, timeout=30).returncode != 0
    finally:
        pod.podman("exec", solo, "sh", "-c", "kill -CONT -1")
    assert pod.run(["podman", "healthcheck", "run", solo], check=False).returncode == 0


# ---- docker-compose.yml as the README runs it --------------------------------------------------

@pytest.fixture(scope="module")
def compose(pod: Podman, container_worker: NsWorker,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    with compose_up(pod, container_worker, COMPOSE_FILE, f"sp2ptest{os.getpid()}",
                    tmp_path_factory.mktemp("compose")) as stack:
        yield stack


def test_compose_binds_loopback_read_only_and_inits_coturn(compose: Compose, pod: Podman) -> None:
    sp2p = pod.inspect(compose.container("sp2p"))
    bindings = sp2p["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", "8080")]
    assert sp2p["HostConfig"]["ReadonlyRootfs"] is True
    assert pod.run(["podman", "healthcheck", "run", compose.container("sp2p")], check=False).returncode == 0
    coturn = pod.inspect(compose.container("coturn"))
    assert coturn["HostConfig"]["Init"] is True
    assert coturn["Config"]["User"] == "nobody"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("transport", "shown"), [("tcp", "TCP"), ("webrtc", "WebRTC")])
def test_cli_to_cli_through_the_compose_server(compose: Compose, container_worker: NsWorker,
                                               tmp_path: Path, transport: str, shown: str) -> None:
    src = random_file(tmp_path / "payload.bin", 3_000_000)
    out = tmp_path / "out"
    out.mkdir()
    printed = cli_transfer(container_worker, src, out, transport=transport)
    assert re.search(rf"via {shown}\s*$", printed, re.M), printed  # direct, not "(relay)"
    assert _sha256(out / "payload.bin") == _sha256(src)


def _browser_receive(code: str, dest: Path) -> tuple[Path, str]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = new_context(browser).new_page()
            return browser_download(page, BASE, code, dest)
        finally:
            browser.close()


def test_cli_to_chromium_through_the_compose_server(compose: Compose, container_worker: NsWorker,
                                                    tmp_path: Path) -> None:
    src = random_file(tmp_path / "to-browser.bin", 1_500_000)
    sender = container_worker.call(Cli, "send", "-server", BASE, str(src))
    try:
        code = sender.wait_code(60)
        saved, preview = container_worker.call(_browser_receive, code, tmp_path / "dl", call_timeout=300)
        assert sender.wait(60) == 0, sender.output()
    finally:
        sender.stop()
    assert preview.startswith("to-browser.bin|")
    assert _sha256(saved) == _sha256(src)


async def _allocate(username: str, password: str) -> tuple[str, int]:
    from aioice.turn import create_turn_endpoint

    transport, _ = await asyncio.wait_for(create_turn_endpoint(
        asyncio.DatagramProtocol, server_addr=("127.0.0.1", 3478), username=username,
        password=password), timeout=10)
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


def _server_issued_credentials() -> dict[str, Any]:
    sender, receiver, _ = pair(BASE.replace("http", "ws") + "/ws")
    try:
        sender.send("relay-retry")
        return sender.expect("turn-credentials", timeout=20)
    finally:
        sender.close()
        receiver.close()


def test_turn_allocation_with_server_issued_credentials(compose: Compose, container_worker: NsWorker) -> None:
    creds = container_worker.call(_server_issued_credentials)
    server = next(s for s in creds["iceServers"] if "username" in s)
    assert "turn:127.0.0.1:3478" in server["urls"]
    username, password = server["username"], server["credential"]
    host, port = container_worker.call(asyncio.run, _allocate(username, password), call_timeout=30)
    assert port > 0 and host
    with pytest.raises(Exception, match="401"):
        container_worker.call(asyncio.run, _allocate(username, "wrong" + password), call_timeout=30)


def test_compose_stops_cleanly(compose: Compose, pod: Podman, container_worker: NsWorker) -> None:
    """Last in the module: with WebSockets open (a paired session, a waiting sender), every
    container stops on SIGTERM within 2 s of the stop command (no SIGKILL), the clients get
    1001 (going away); down leaves nothing."""
    ws_url = BASE.replace("http", "ws", 1) + "/ws"
    sender, receiver, _ = container_worker.call(pair, ws_url)
    waiting, _, _ = container_worker.call(hello, ws_url)
    held = [sender, receiver, waiting]
    with ThreadPoolExecutor(len(held)) as readers:
        codes = [readers.submit(close_code, client, answer=True, timeout=60) for client in held]
        stop_cleanly(compose, pod, [{"sp2p", "coturn"}], servers={"sp2p"})
        assert [code.result() for code in codes] == [GOING_AWAY] * len(held)

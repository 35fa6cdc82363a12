"""Fixtures of the container tests (tests/dist/test_container*.py), shared per session.

`prepared` runs `scripts/test_container.sh prepare` once: stand-in base images from Debian
packages (cached in podman's storage), then packaging/Dockerfile built unchanged. Everything
then runs in one network namespace made here (loopback plus podman's bridges);
`container_worker` is a
thread inside it, where sockets, CLIs and the browser are made. At the end the containers go,
then the project image (the stand-in bases stay cached).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dist.container.podman import Compose, Podman
from tests.dist.helpers import REPO_ROOT
from tests.netlab.netns import NsWorker
from tests.server.helpers import http_get
from tests.web.browser import ARTIFACTS
from tests.web.cli import Cli

FIGURES = ARTIFACTS.parent / "container" / "figures.txt"
#: as the README prints it; the compose files publish 127.0.0.1:8080 (in the namespace)
BASE = "http://localhost:8080"


def record(name: str, value: str) -> None:
    """One figure for the closing note (test-artifacts/container/figures.txt)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(f"{name}: {value}\n")


@pytest.fixture(scope="session")
def prepared() -> None:
    FIGURES.unlink(missing_ok=True)
    if os.environ.get("SP2P_CONTAINER_PREPARED") == "1":
        return  # scripts/test_container.sh did it just before running us
    start = time.monotonic()
    result = subprocess.run(["bash", "scripts/test_container.sh", "prepare"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-6000:]
    record("prepare (tools, stand-in bases, image build)", f"{time.monotonic() - start:.1f} s")


@pytest.fixture(scope="session")
def container_ns() -> Iterator[str]:
    name = f"sp2pctr{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="session")
def pod(prepared: None, container_ns: str) -> Iterator[Podman]:
    pod = Podman(container_ns)
    yield pod
    # whatever a failed test left behind (in the namespace, where its port rules are), then
    # the project image; the stand-in bases stay cached for the next run
    names = pod.podman("ps", "-a", "--filter", "name=^sp2ptest", "--format", "{{.Names}}").split()
    if names:
        pod.podman("rm", "-f", "-v", "-t", "0", *names, check=False)
    subprocess.run(["bash", "scripts/test_container.sh", "clean"], cwd=REPO_ROOT, check=False,
                   capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def container_worker(container_ns: str) -> Iterator[NsWorker]:
    w = NsWorker(container_ns)
    yield w
    w.stop()


def wait_healthy(worker: NsWorker, base: str, timeout: float = 90.0) -> float:
    """Seconds until GET /health answers `ok`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(OSError):
            status, _, body = worker.call(http_get, f"{base}/health")
            if status == 200 and body == b"ok":
                return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{base}/health never answered ok")


@contextlib.contextmanager
def compose_up(pod: Podman, worker: NsWorker, compose_file: Path, project: str,
               tmp: Path) -> Iterator[Compose]:
    """The README's steps: `cp .env.example .env`, a fresh secret, `up -d` (the .env lives
    outside the checkout); `down -v` afterwards."""
    env_file = tmp / ".env"
    example = (REPO_ROOT / "packaging" / ".env.example").read_text()
    secret = os.urandom(32).hex()
    env_file.write_text(re.sub(r"(?m)^SP2P_TURN_SECRET=.*$", f"SP2P_TURN_SECRET={secret}", example))
    stack = Compose(pod, project, env_file, compose_file)
    try:
        start = time.monotonic()
        stack("up", "-d")
        try:
            wait_healthy(worker, BASE)
        except AssertionError as exc:  # say why: which container is down, and its last words
            state = stack("ps", "-a", check=False)
            logs = stack("logs", "--tail", "20", check=False)
            raise AssertionError(f"{exc}\n{state}\n{logs[-8000:]}") from None
        record(f"start: {compose_file.relative_to(REPO_ROOT)} up -d -> /health ok",
               f"{time.monotonic() - start:.2f} s")
        yield stack
    finally:
        volumes = stack.volumes()
        stack("down", "-v", "-t", "2", check=False)
        if volumes:
            pod.podman("volume", "rm", "-f", *volumes, check=False)


def cli_transfer(worker: NsWorker, src: Path, out: Path, *, transport: str = "auto") -> str:
    """`sp2p send` then `sp2p receive CODE` against BASE, both inside the namespace; returns
    what the receiver printed."""
    clis: list[Cli] = []
    flags = ("-transport", transport)
    try:
        sender = worker.call(Cli, "send", "-server", BASE, *flags, str(src))
        clis.append(sender)
        code = sender.wait_code(60)
        receiver = worker.call(Cli, "receive", "-server", BASE, *flags, "-output", str(out), code)
        clis.append(receiver)
        assert receiver.wait(120) == 0, receiver.output()
        assert sender.wait(30) == 0, sender.output()
        return receiver.output()
    finally:
        for cli in clis:
            cli.stop()


#: the goal: every container exits within 2 s of its `stop` command. `stop -t STOP_LIMIT`
#: makes passing a proof: a container still running then is SIGKILLed (exit code 137) and
#: fails the test instead of being waited for. (The wall-clock time from our `podman stop`
#: to the exit is only recorded: it includes podman's own start, 2.02 s once at load 17.) The stages are stopped with `podman stop`,
#: the command podman-compose runs per container: podman-compose's own start (its Python
#: and a few podman queries, 2-3 s on a loaded 2-core machine) is not the containers' time.
STOP_LIMIT = 2


def stop_cleanly(stack: Compose, pod: Podman, stages: list[set[str]], servers: set[str]) -> None:
    """Every container exits on SIGTERM within STOP_LIMIT s of the `stop` command of its
    stage (the sp2p `servers` with status 0, so by their own shutdown), then `down` leaves
    nothing behind. `stages`: the services, stopped a stage at a time as Docker Compose does
    (dependents first; podman-compose alone stops all at once)."""
    names = stack.containers()
    assert sorted(names) == sorted(stack.container(s) for stage in stages for s in stage)
    volumes = stack.volumes()
    compose_file = stack.compose_file.relative_to(REPO_ROOT)
    took: dict[str, float] = {}
    begin = time.time()
    for stage in stages:
        start = time.time()
        pod.podman("stop", "-t", str(STOP_LIMIT), *sorted(stack.container(s) for s in stage))
        for service in stage:
            name = stack.container(service)
            state = pod.inspect(name)["State"]
            assert state["Status"] == "exited", (service, state["Status"])
            assert state["ExitCode"] != 137, f"{service} needed SIGKILL"
            if service in servers:
                assert state["ExitCode"] == 0, (service, state["ExitCode"])
                logs = pod.run(["podman", "logs", name])
                assert "Traceback" not in logs.stdout + logs.stderr, logs.stderr[-3000:]
            finished = int(pod.podman("inspect", "--format", "{{.State.FinishedAt.UnixMilli}}", name)) / 1000
            took[service] = finished - start
            record(f"{compose_file} stop: {service} exited after", f"{took[service]:.2f} s")
    record(f"{compose_file} stop (all stages)", f"{time.time() - begin:.2f} s")
    start = time.time()
    stack("down", "-v", "-t", str(STOP_LIMIT))
    record(f"{compose_file} down (podman-compose, containers stopped)", f"{time.time() - start:.2f} s")
    assert stack.containers() == []
    if volumes:
        pod.podman("volume", "rm", "-f", *volumes)

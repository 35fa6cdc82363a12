"""Server-side packaging: docker-compose.yml, the Dockerfile and its health check, and the
shipped coturn configuration (security case R3: no relaying into private networks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.dist.helpers import REPO_ROOT
from tests.support.server_proc import ServerProc, start_server

PACKAGING = REPO_ROOT / "packaging"
COMPOSE_ENV = {
    "SP2P_BASE_URL": "https://sp2p.example.org",
    "SP2P_TURN_HOST": "turn.example.org",
    "SP2P_TURN_SECRET": "0123456789abcdef",
}


def compose_command() -> list[str]:
    """`docker compose` (the plugin) if present, else Debian's `docker-compose` v1."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    assert shutil.which("docker-compose"), "need docker compose or docker-compose (apt)"
    return ["docker-compose"]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    return subprocess.run(
        [*compose_command(), "-f", "docker-compose.yml", "config"],
        cwd=PACKAGING, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )


def test_compose_file_is_valid_and_shares_the_turn_secret() -> None:
    result = compose_config(COMPOSE_ENV)  # no Docker engine needed for `config`
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    sp2p, coturn = resolved["services"]["sp2p"], resolved["services"]["coturn"]
    env = sp2p["environment"]
    assert env["SP2P_BASE_URL"] == "https://sp2p.example.org"
    assert env["SP2P_TURN_SECRET"] == coturn["environment"]["SP2P_TURN_SECRET"]
    assert env["SP2P_TURN_SERVERS"].split(",") == [
        "stun:turn.example.org:3478", "turn:turn.example.org:3478"]
    assert env["SP2P_CONFIG_DIR"] == "/data"
    assert sp2p["build"]["dockerfile"] == "packaging/Dockerfile"
    assert Path(sp2p["build"]["context"]) == REPO_ROOT
    # the secret reaches coturn through a private config copy, not its argv
    assert "static-auth-secret" in " ".join(coturn["entrypoint"])
    assert "SP2P_TURN_SECRET" not in " ".join(coturn.get("command") or [])
    assert any(v.endswith("turnserver.conf:ro") or v.get("target", "").endswith(".conf")
               if isinstance(v, dict) else v.endswith(":ro") for v in coturn["volumes"])


def test_compose_publishes_on_loopback_and_inits_coturn() -> None:
    resolved = yaml.safe_load(compose_config(COMPOSE_ENV).stdout)
    sp2p, coturn = resolved["services"]["sp2p"], resolved["services"]["coturn"]
    # behind a reverse proxy on the same host: nothing listens on the public interfaces
    for port in sp2p["ports"]:
        host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
        assert host_ip == "127.0.0.1", port
    assert sp2p["read_only"] is True
    # turnserver ignores SIGTERM as PID 1
    assert coturn["init"] is True


def test_compose_settings_ship_as_an_example_and_the_real_file_is_ignored() -> None:
    example = PACKAGING / ".env.example"
    keys = {line.split("=", 1)[0] for line in example.read_text().splitlines()
            if line and not line.startswith("#")}
    assert keys == set(COMPOSE_ENV)
    # the example's secret is empty: compose refuses to start until one is set
    env = dict(line.split("=", 1) for line in example.read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["SP2P_TURN_SECRET"] == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", "packaging/.env"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "packaging/.env (the TURN secret) must be git-ignored"


def test_compose_refuses_to_start_without_its_settings() -> None:
    result = compose_config({})
    assert result.returncode != 0
    assert "SP2P_BASE_URL" in result.stderr


def test_compose_keeps_the_acme_alternative_documented() -> None:
    text = (PACKAGING / "docker-compose.yml").read_text()
    assert re.search(r'^\s*# SP2P_ACME: "true"$', text, re.M)
    assert re.search(r"^\s*# SP2P_ACME_EMAIL:", text, re.M)
    assert re.search(r'^\s*# - "443:443"$', text, re.M)


def test_dockerfile_runs_unprivileged_with_a_health_check() -> None:
    text = (PACKAGING / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    # the server's dependencies only (packaging/server_requirements.py), sp2p itself --no-deps
    assert "python packaging/server_requirements.py pyproject.toml > requirements.txt" in text
    assert "--no-deps ." in text and "-r requirements.txt" in text
    assert re.search(r"^\s+SP2P_DL_DIR=/srv/sp2p/dl$", text, re.M)
    assert "groupadd --system --gid 10001 sp2p" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[\"python\", \"/usr/local/bin/sp2p-healthcheck\"\]",
                     text, re.M)
    assert re.search(r'^ENTRYPOINT \["sp2p-server"\]$', text, re.M)
    # every COPY source survives the context filter next to the Dockerfile
    ignore = (PACKAGING / "Dockerfile.dockerignore").read_text()
    for source in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert f"!{source.rstrip('/')}" in ignore.replace("/\n", "\n"), source


#: import names of the distributions packaging/server_requirements.py leaves out of the image
CLIENT_ONLY_IMPORTS = {"aiortc": "aiortc", "miniupnpc": "miniupnpc", "zstandard": "zstandard",
                       "pyyaml": "yaml", "websocket-client": "websocket"}
#: every module of the server package, imported; prints the top-level modules now loaded
_IMPORT_ALL = """
import importlib, pkgutil, sys
import server
for info in pkgutil.walk_packages(server.__path__, "server."):
    if not info.name.endswith("__main__"):  # that one runs the server
        importlib.import_module(info.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_server_image_requirements_leave_out_only_what_the_server_never_imports() -> None:
    sys.path.insert(0, str(PACKAGING))
    try:
        import server_requirements as sr
    finally:
        sys.path.remove(str(PACKAGING))
    assert set(CLIENT_ONLY_IMPORTS) == sr.CLIENT_ONLY
    result = subprocess.run([sys.executable, str(PACKAGING / "server_requirements.py"),
                             str(REPO_ROOT / "pyproject.toml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    names = {sr.requirement_name(line) for line in result.stdout.splitlines()}
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = {sr.requirement_name(r) for r in project["dependencies"]}
    wanted |= {sr.requirement_name(r) for r in project["optional-dependencies"]["server"]}
    assert names == wanted - sr.CLIENT_ONLY
    assert {"cryptography", "flask", "gunicorn"} <= names
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    loaded = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True,
                            env=env, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert set(loaded.stdout.split()) & set(CLIENT_ONLY_IMPORTS.values()) == set()


@pytest.fixture(scope="module")
def health_server() -> Iterator[ServerProc]:
    with start_server() as server:
        yield server


def run_healthcheck(addr: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
    return subprocess.run(
        [sys.executable, str(PACKAGING / "healthcheck.py")],
        env={**env, "SP2P_ADDR": addr}, capture_output=True, text=True, timeout=30,
    )


def test_healthcheck_passes_against_a_live_server(health_server: ServerProc) -> None:
    assert run_healthcheck(f":{health_server.port}").returncode == 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        result = run_healthcheck(f":{port}")
    assert result.returncode == 1
    assert "health check failed" in result.stderr


# ---- coturn (R3) -----------------------------------------------------------------------

#: the one coturn config (docker-compose mounts it; the README points to it)
CONF = PACKAGING / "turnserver.conf"
SECRET = "test-secret-for-the-shipped-config"
#: peers a relay must never reach: loopback, RFC 1918, CGNAT, link-local/metadata,
#: "this network", benchmarking, multicast, ULA, v4-mapped, 6to4, documentation
PRIVATE_PEERS = ("127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "100.64.0.1",
                 "169.254.169.254", "0.0.0.1", "198.18.0.1", "224.0.0.1",
                 "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "2002:a00:1::1",
                 "2001:db8::1", "ff02::1")
#: public peers the relay must still accept. The test namespace has no route anywhere but
#: loopback, so coturn's packets to them die inside it: nothing leaves the machine.
PUBLIC_PEERS = ("1.1.1.1", "9.9.9.9", "2606:4700:4700::1111")


#: readiness probe run inside the namespace: a STUN Binding request until coturn answers
_STUN_PROBE = """
import os, socket, struct, sys, time
tid = os.urandom(12)
req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid
end = time.monotonic() + 10
family = socket.AF_INET6 if sys.argv[3] == "6" else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.settimeout(0.2)
    while time.monotonic() < end:
        s.sendto(req, (sys.argv[1], int(sys.argv[2])))
        try:
            if s.recvfrom(2048)[0][8:20] == tid:
                sys.exit(0)
        except OSError:
            pass
sys.exit(1)
"""
#: coturn listeners inside the namespace: one relaying over IPv4, one over IPv6
LISTENERS = {4: ("127.0.0.1", 3478), 6: ("::1", 3479)}


@pytest.fixture(scope="module")
def coturn_netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """coturn running the shipped config inside a fresh network namespace that has only
    loopback: a peer that is not refused gets no route, instead of traffic leaving the
    machine. Yields the namespace name. (Its lint is tests/server/test_turn.py.)"""
    assert shutil.which("turnserver"), "Debian coturn is needed (.ci/apt-packages)"
    work = tmp_path_factory.mktemp("coturn")
    ns = f"sp2pdist{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for family, (ip, port) in LISTENERS.items():
            low = 49700 + 100 * (family == 6)
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, "turnserver", "-c", str(CONF),
                 f"--listening-ip={ip}", f"--relay-ip={ip}", f"--listening-port={port}",
                 f"--min-port={low}", f"--max-port={low + 99}",
                 f"--static-auth-secret={SECRET}", f"--userdb={work / f'turndb{family}'}",
                 f"--pidfile={work / f'turnserver{family}.pid'}", "--no-tcp"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        for family, (ip, port) in LISTENERS.items():
            ready = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", _STUN_PROBE, ip, str(port),
                 str(family)],
                timeout=30,
            )
            assert ready.returncode == 0, f"turnserver on {ip} did not answer STUN"
        yield ns
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


_ATTEMPTS = iter(range(10_000))


def rest_credentials(user_suffix: int) -> tuple[str, str]:
    username = str(int(time.time()) + 600 + user_suffix)  # a distinct user per attempt
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def relay_attempt(ns: str, peer: str) -> str:
    """Allocate with fresh, valid credentials and bind a channel to `peer`; return the
    client's output up to "Total connect time" (allocation and channel bind done: it would
    only go on to wait for echoes that cannot come)."""
    ip, port = LISTENERS[6 if ":" in peer else 4]
    username, password = rest_credentials(next(_ATTEMPTS))  # a new user: no quota carry-over
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "turnutils_uclient", "-n", "1", "-m", "1", "-e", peer,
         "-r", "3480", "-u", username, "-w", password, "-p", str(port), ip],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Total connect time" in line:
                break
    finally:
        proc.kill()
        proc.wait(10)
    output = "".join(lines)
    assert "Cannot complete Allocation" not in output, output  # the credentials were good
    assert "Total connect time" in output or "403" in output, output
    return output


@pytest.mark.netns
@pytest.mark.parametrize("peer", PRIVATE_PEERS)
def test_shipped_coturn_refuses_to_relay_to_private_addresses(
    peer: str, coturn_netns: str
) -> None:
    assert "403 (Forbidden IP)" in relay_attempt(coturn_netns, peer)


@pytest.mark.netns
@pytest.mark.parametrize("peer", PUBLIC_PEERS)
def test_shipped_coturn_still_relays_to_public_addresses(peer: str, coturn_netns: str) -> None:
    """The deny list must not swallow everything (a `::` entry does, in coturn 4.6)."""
    assert "Forbidden IP" not in relay_attempt(coturn_netns, peer)

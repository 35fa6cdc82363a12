"""TURN: credentials only after relay-retry, in coturn's REST format, accepted by coturn."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import RELAXED
from tests.server.helpers import Client, live_server, pair
from tests.support.coturn import Coturn, rest_password

SECRET = "s3cret-for-tests"
TURN = {
    **RELAXED,
    "turn_servers": "stun:stun.example:3478, turn:127.0.0.1:3478",
    "turn_secret": SECRET,
    "turn_delay": 0.0,
}
#: the one coturn config: docker-compose mounts it, the README points to it
CONF = Path(__file__).resolve().parents[2] / "packaging" / "turnserver.conf"


def relay_credentials(config: dict[str, Any]) -> tuple[dict[str, Any], Client, Client]:
    with live_server(config) as srv:
        sender, receiver, _ = pair(srv.ws_url)
        sender.send("relay-retry")
        creds = sender.expect("turn-credentials")
        assert receiver.expect("relay-retry") == {}
        return creds, sender, receiver


def test_welcome_advertises_turn_but_carries_no_credentials() -> None:
    with live_server(TURN) as srv:
        sender, receiver, sid = pair(srv.ws_url)
        welcome = Client(srv.ws_url)
        welcome.send("hello", {"version": 2})
        payload = welcome.expect("welcome")
        assert payload["iceServers"] == [{"urls": ["stun:stun.example:3478"]}]
        assert payload["turnAvailable"] is True
        assert "username" not in str(payload) and "credential" not in str(payload)
        # R4 (server part): nothing TURN-related arrives unasked
        sender.send("crypto", {"publicKey": "k"})
        assert receiver.expect("crypto") == {"publicKey": "k"}
        assert receiver.nothing_for(0.3) and sender.nothing_for(0.1)


def test_rest_credential_format() -> None:
    before = int(time.time())
    creds, _, _ = relay_credentials({**TURN, "turn_ttl": 120.0})
    (server,) = creds["iceServers"]
    assert server["urls"] == ["turn:127.0.0.1:3478"]
    username, password = server["username"], server["credential"]
    match = re.fullmatch(r"(\d+):([0-9a-f]{16})", username)
    assert match is not None
    assert before + 120 <= int(match.group(1)) <= int(time.time()) + 120
    assert password == rest_password(SECRET, username)


def test_static_credentials() -> None:
    config = {
        **RELAXED,
        "turn_servers": "turn:t.example:3478,turns:t.example:5349",
        "turn_username": "sp2p",
        "turn_password": "pw",
        "turn_delay": 0.0,
    }
    creds, _, _ = relay_credentials(config)
    assert creds == {
        "iceServers": [
            {"urls": ["turn:t.example:3478", "turns:t.example:5349"], "username": "sp2p", "credential": "pw"}
        ]
    }


def test_relay_retry_before_join_gets_nothing() -> None:
    """R1: no credentials for a sender alone, nor straight after hello."""
    with live_server(TURN) as srv:
        sender = Client(srv.ws_url)
        sender.send("hello", {"version": 2})
        sender.expect("welcome")
        sender.send("relay-retry")
        assert sender.nothing_for(0.5)


def test_delay_does_not_stall_other_messages_and_order_is_kept() -> None:
    """Credentials wait for the minimum delay on a timer: the requester's later messages
    are relayed meanwhile, and its relay-retry reaches the peer after its credentials."""
    with live_server({**TURN, "turn_delay": 1.0}) as srv:
        sender, receiver, _ = pair(srv.ws_url)
        sender.send("relay-retry")
        sender.send("candidate", {"candidate": "late"})
        assert receiver.expect("candidate") == {"candidate": "late"}  # not stalled
        assert sender.expect("turn-credentials", timeout=5)["iceServers"]
        assert receiver.expect("relay-retry", timeout=5) == {}


def test_credentials_are_not_handed_out_again_and_again() -> None:
    """R1: the same credentials for a repeat request, none past the per-peer budget."""
    with live_server({**TURN, "turn_max_per_peer": 2}) as srv:
        sender, receiver, _ = pair(srv.ws_url)
        answers = []
        for _ in range(4):
            sender.send("relay-retry")
        for _ in range(2):
            answers.append(sender.expect("turn-credentials"))
        assert answers[0] == answers[1]
        assert sender.nothing_for(0.4)
        assert [receiver.recv()["type"] for _ in range(4)] == ["relay-retry"] * 4
        receiver.send("relay-retry")  # the other peer has its own budget and username
        other = receiver.expect("turn-credentials")
        assert other != answers[0]


def test_per_ip_issuance_budget() -> None:
    """R1: many sessions from one IP cannot harvest credentials."""
    with live_server({**TURN, "turn_per_ip_hour": 2}) as srv:
        issued = 0
        for _ in range(3):
            sender, _, _ = pair(srv.ws_url)
            sender.send("relay-retry")
            if not sender.nothing_for(0.3):
                issued += 1
        assert issued == 2


# --- real coturn --------------------------------------------------------------------------


def finished(proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    """Exit status and output; communicate() closes the pipe (read() left it to the GC)."""
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out or b""


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    assert shutil.which("turnserver"), "apt package coturn is required"
    server = Coturn(tmp_path, "--allow-loopback-peers", secret=SECRET)
    try:
        yield server
    finally:
        server.stop()


def _creds(**overrides: Any) -> tuple[str, str]:
    creds, _, _ = relay_credentials({**TURN, **overrides})
    (ice,) = creds["iceServers"]
    return ice["username"], ice["credential"]


@pytest.mark.slow
def test_coturn_accepts_fresh_and_rejects_expired_or_forged(coturn: Coturn) -> None:
    """R2: a real coturn (use-auth-secret) allocates only with fresh, correct credentials."""
    fresh = _creds(turn_ttl=300.0)
    expiring = _creds(turn_ttl=1.0)
    wrong_secret = _creds(turn_ttl=300.0, turn_secret="not-the-secret")
    expiry, _, tag = fresh[0].partition(":")
    tampered = (f"{int(expiry) + 1000}:{tag}", fresh[1])
    time.sleep(2.2)  # `expiring` is now in the past
    runs = {
        name: coturn.allocate(*creds)
        for name, creds in [
            ("fresh", fresh),
            ("expired", expiring),
            ("wrong", wrong_secret),
            ("tampered", tampered),
        ]
    }
    results = {name: finished(proc) for name, proc in runs.items()}
    assert results["fresh"][0] == 0, results["fresh"][1][-500:]
    # data went through the relay both ways
    assert re.search(rb"tot_recv_msgs=[1-9]", results["fresh"][1]), results["fresh"][1][-500:]
    for name in ("expired", "wrong", "tampered"):
        assert results[name][0] != 0, name


def test_shipped_coturn_config_is_hardened() -> None:
    """R3 (lint): the shipped turnserver.conf denies internal ranges, sets quotas, holds no secret."""
    text = CONF.read_text()
    lines = {line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}
    for needed in ("use-auth-secret", "no-multicast-peers", "fingerprint", "realm=sp2p", "listening-port=3478"):
        assert needed in lines
    assert "allow-loopback-peers" not in lines
    assert not any(line.startswith("static-auth-secret") for line in lines), "no secret in git"
    for key in ("user-quota", "total-quota", "max-bps"):
        assert any(re.fullmatch(rf"{key}=[1-9]\d*", line) for line in lines), key
    denied = {line.split("=", 1)[1] for line in lines if line.startswith("denied-peer-ip=")}
    for cidr_range in (
        "0.0.0.0-0.255.255.255",
        "10.0.0.0-10.255.255.255",
        "127.0.0.0-127.255.255.255",
        "169.254.0.0-169.254.255.255",
        "172.16.0.0-172.31.255.255",
        "192.168.0.0-192.168.255.255",
        "224.0.0.0-255.255.255.255",
        "::1",
        "::ffff:0.0.0.0-::ffff:255.255.255.255",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ):
        assert cidr_range in denied, cidr_range
    # coturn 4.6 matches every IPv4 peer against `::` (tests/dist/test_server_packaging.py)
    assert not any(entry.startswith("::-") for entry in denied)
    version = subprocess.run(["turnserver", "--version"], capture_output=True, text=True)
    numbers = re.search(r"(\d+)\.(\d+)\.(\d+)", version.stdout + version.stderr)
    assert numbers is not None
    assert tuple(int(n) for n in numbers.groups()) >= (4, 5, 2)


def test_shipped_coturn_config_refuses_loopback_peers(tmp_path: Path) -> None:
    """R3 (live): with the shipped config, relaying to 127.0.0.1 is 403 Forbidden IP."""
    server = Coturn(tmp_path, secret=SECRET, config=CONF)
    try:
        proc = server.allocate(*_creds(turn_ttl=300.0))
        output = proc.communicate(timeout=60)[0]
    finally:
        server.stop()
    assert proc.returncode != 0
    assert b"403 (Forbidden IP)" in output

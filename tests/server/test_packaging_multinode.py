"""The multi-node sample in packaging/multinode/ is consistent and haproxy accepts it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from server.flags import FLAGS

SAMPLE = Path(__file__).resolve().parents[2] / "packaging" / "multinode"


def test_haproxy_accepts_the_sample_config() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(SAMPLE / "haproxy.cfg")], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_every_node_shares_one_redis_and_is_balanced() -> None:
    compose = yaml.safe_load((SAMPLE / "docker-compose.yml").read_text())
    services = compose["services"]
    nodes = {name: svc for name, svc in services.items() if "SP2P_REDIS" in svc.get("environment", {})}
    assert len(nodes) >= 2
    known_env = {flag.env for flag in FLAGS}
    for svc in nodes.values():
        env = svc["environment"]
        assert env["SP2P_REDIS"] == "redis://redis:6379/0"
        assert env["SP2P_TRUST_PROXY"] == "true"  # behind haproxy's X-Forwarded-For
        assert set(env) <= known_env, set(env) - known_env
    haproxy = (SAMPLE / "haproxy.cfg").read_text()
    balanced = set(re.findall(r"^\s*server \S+ (\S+):8080 check", haproxy, re.M))
    assert balanced == set(nodes)
    assert "redis" in services and "coturn" in services

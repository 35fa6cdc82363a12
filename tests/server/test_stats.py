"""Stats: counted from the wire, persisted atomically only with a config directory."""

from __future__ import annotations

import json
from pathlib import Path

from server.metrics import Metrics
from server.stats import MemoryCounters, Stats
from tests.server.conftest import RELAXED
from tests.server.helpers import Client, LiveServer, hello, http_get, live_server, pair, wait_until


def test_stats_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "stats.json"
    counters = MemoryCounters()
    stats = Stats(counters, path, interval=60)
    counters.incr("attemptedSends", 2)
    stats.stop()
    assert json.loads(path.read_text())["attemptedSends"] == 2
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["stats.json"]  # no temp files left
    again = Stats(MemoryCounters(), path)
    assert again.snapshot()["attemptedSends"] == 2
    written = path.stat().st_mtime_ns
    again.flush()
    assert path.stat().st_mtime_ns == written  # unchanged totals: not written again
    path.write_text("{broken")
    assert Stats(MemoryCounters(), path).snapshot()["attemptedSends"] == 0  # unreadable: start from zero


def test_counts_from_sessions_and_no_file_by_default(tmp_path: Path) -> None:
    with live_server({**RELAXED, "config_dir": tmp_path, "stats_interval": 0.1}) as srv:
        sender, receiver, _ = pair(srv.ws_url)
        for client in (sender, receiver):  # accepted once per session (W-12)
            client.send("transfer-complete", {"bytesTransferred": 1000})
        sender.send("connected")
        receiver.expect("connected")
        path = tmp_path / "stats.json"
        assert wait_until(lambda: path.exists() and json.loads(path.read_text()).get("completedSends") == 1)
        assert json.loads(path.read_text()) == {
            "attemptedSends": 1,
            "connectedSends": 1,
            "completedSends": 1,
            "bytesTransferred": 1000,
        }
    with live_server(RELAXED) as srv:
        pair(srv.ws_url)
        assert wait_until(lambda: srv.state.stats.snapshot()["attemptedSends"] == 1)
        assert srv.state.config.config_dir is None


def test_metrics_in_prometheus_format(server: LiveServer) -> None:
    sender, receiver, _ = pair(server.ws_url)
    waiting, _, _ = hello(server.ws_url)
    sender.send("crypto", {"publicKey": "k"})
    receiver.expect("crypto")
    refused = Client(server.ws_url)
    refused.send("join", {"version": 2, "sessionId": "zzzzzzzz"})
    refused.expect("error")
    status, headers, body = http_get(f"{server.http_url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for line in (
        "sp2p_paired_sessions 1.0",
        "sp2p_waiting_sessions 1.0",
        "sp2p_messages_relayed_total 1.0",
        'sp2p_refusals_total{reason="session_not_found"} 1.0',
        "sp2p_turn_credentials_issued_total 0.0",
    ):
        assert line in text.splitlines(), line
    assert wait_until(
        lambda: "sp2p_open_connections 3.0" in http_get(f"{server.http_url}/metrics")[2].decode()
    )
    receiver.close()
    sender.expect("peer-left")
    assert wait_until(
        lambda: "sp2p_paired_sessions 0.0" in http_get(f"{server.http_url}/metrics")[2].decode()
    )


def test_hot_counts_reach_the_shared_values_within_the_sync_interval() -> None:
    """Connection, session and message counts are queued, then added by a timer (what
    another worker's scrape reads); a scrape this process answers sees them at once."""
    metrics = Metrics(sync_every=0.05)
    registry = metrics._registry

    def value(name: str) -> float | None:
        return registry.get_sample_value(name)

    for _ in range(3):
        metrics.connection(+1)
    metrics.connection(-1)
    metrics.session_opened()
    metrics.session_paired()
    metrics.relayed(4)
    metrics.relayed(1)
    metrics.refused("rate_limited")  # rare: straight through
    assert registry.get_sample_value("sp2p_refusals_total", {"reason": "rate_limited"}) == 1.0
    assert wait_until(lambda: value("sp2p_messages_relayed_total") == 5.0)
    assert value("sp2p_open_connections") == 2.0
    assert (value("sp2p_waiting_sessions"), value("sp2p_paired_sessions")) == (0.0, 1.0)
    slow = Metrics(sync_every=3600)
    slow.connection(+1)
    slow.session_opened()
    assert slow._registry.get_sample_value("sp2p_open_connections") == 0.0  # queued
    text = slow.render().decode().splitlines()
    assert "sp2p_open_connections 1.0" in text and "sp2p_waiting_sessions 1.0" in text

"""Fixtures of the server tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.helpers import LiveServer, live_server

#: the in-thread default server lifts the per-IP caps: every test connects from 127.0.0.1
RELAXED = {
    "max_sessions_per_ip": 1000,
    "max_conns_per_ip": 1000,
    "rate_limit": 0,
    "miss_limit": 0,
}


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with live_server(RELAXED) as live:
        yield live

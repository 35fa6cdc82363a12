"""Fixtures of the server tests.

Every test that runs a server or a store runs once per backend: `memory` (the default, no
external service) and `redis` (a real redis-server on a Unix socket, one per test session,
a fresh key prefix per test). `pytest_generate_tests` adds the `backend` parameter to the
modules listed in BACKEND_MODULES; `live_server()` picks the backend up from there.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.sessions import MemoryStore
from server.store import SessionStore
from tests.server import helpers
from tests.server.helpers import LiveServer, live_server
from tests.server.workers import start_workers
from tests.support.redis_proc import RedisProc
from tests.support.server_proc import ServerProc

#: the in-thread default server lifts the per-IP caps: every test connects from 127.0.0.1
RELAXED = {
    "max_sessions_per_ip": 1000,
    "max_conns_per_ip": 1000,
    "rate_limit": 0,
    "miss_limit": 0,
}

BACKENDS = ("memory", "redis")
BACKEND_MODULES = {
    "test_sessions",
    "test_ws",
    "test_limits",
    "test_turn",
    "test_signal_proto",
    "test_http",
    "test_stats",
}

StoreFactory = Callable[..., SessionStore]
_prefixes = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rsplit(".", 1)[-1] in BACKEND_MODULES:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    with RedisProc.start(tmp_path_factory.mktemp("redis")) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """The WebSocket clients a test left open are closed, not left to the GC (the suite is
    strict about ResourceWarning: tests/conftest.py)."""
    yield
    helpers.Client.close_leftovers()


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store every live_server() of this test uses (memory unless parametrized)."""
    name: str = getattr(request, "param", "memory")
    if name == "redis":
        redis_proc: RedisProc = request.getfixturevalue("redis_server")
        prefix = f"t{next(_prefixes)}{secrets.token_hex(3)}"
        helpers.BACKEND_CONFIG.update(redis_url=redis_proc.url, redis_prefix=prefix)
    try:
        yield name
    finally:
        helpers.BACKEND_CONFIG.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Build stores of this test's backend (each Redis one under its own prefix)."""
    made: list[SessionStore] = []

    def factory(**kwargs: Any) -> SessionStore:
        limits = {"max_sessions": 5, "max_sessions_per_ip": 2, **kwargs}
        store: SessionStore
        if backend == "redis":
            from server.redis_store import RedisStore

            url = request.getfixturevalue("redis_server").url
            store = RedisStore.from_url(url, prefix=f"s{next(_prefixes)}{secrets.token_hex(3)}", **limits)
        else:
            store = MemoryStore(**limits)
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


@pytest.fixture
def server() -> Iterator[LiveServer]:
    with live_server(RELAXED) as live:
        yield live


@pytest.fixture
def redis_url(redis_server: RedisProc) -> str:
    return redis_server.url


@pytest.fixture
def four(redis_url: str) -> Iterator[ServerProc]:
    """A real gunicorn server with four gevent workers on the session's redis-server."""
    with start_workers(redis_url, 4) as server:
        yield server

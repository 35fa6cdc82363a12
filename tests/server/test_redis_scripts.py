"""The Lua scripts' answers and the record codec (server.redis_scripts), on a REAL redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from server import redis_scripts
from server.redis_store import RedisStore
from server.store import SessionRecord
from tests.support.redis_proc import RedisProc

#: what a client may put in a preview blob: quotes, escapes, a slash, NUL, non-ASCII
AWKWARD = 'a"b\\c/d\x00e\u00e9\u4e2d\U0001f600\n{"x":[1]}'


@pytest.fixture
def store(redis_server: RedisProc) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_server.url, prefix="scripts", max_sessions=10, max_sessions_per_ip=10)
    yield store
    store.close()


def test_join_answers_the_record_as_one_string(store: RedisStore, redis_server: RedisProc) -> None:
    """One bulk string, not a 24-element array (which cost ~90 us to parse in Python)."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    created = store.create("10.0.0.1", version=2, client_type="cli", node="n1")
    assert isinstance(created, SessionRecord)
    keys = [store._k("s", created.id), store._k("seen"), store._k("ns", "n2"), store._k("stats")]
    answer = client.eval(redis_scripts.JOIN, len(keys), *keys, 2, "browser", "1754000000.5", "n2", created.id, "c")
    assert isinstance(answer, str)
    assert redis_scripts.decode_record(answer, created.id).receiver_node == "n2"
    client.close()


def test_an_awkward_file_info_survives_join_and_end(store: RedisStore) -> None:
    created = store.create("10.0.0.2", version=2, client_type="cli", node="n1")
    assert isinstance(created, SessionRecord)
    assert store.set_file_info(created.id, AWKWARD)
    joined = store.join(created.id, version=2, client_type="browser", node="n2")
    assert isinstance(joined, SessionRecord)
    assert joined.file_info == AWKWARD
    assert (joined.sender_node, joined.receiver_node, joined.receiver_client_type) == ("n1", "n2", "browser")
    assert joined.joined_at is not None and joined.version == 2 and joined.sender_ip == "10.0.0.2"
    ended = store.end(created.id)
    assert ended == joined
    assert store.end(created.id) is None  # only the call that ended it gets the record
    assert store.get(created.id) is None

"""The reaper's activity report lets connections run between steps (one worker, 15,000
idle peers in memory had stalled every exchange for 190-500 ms once per pass)."""

from __future__ import annotations

import time

import pytest

from server import state as state_module
from server.config import ServerConfig
from server.state import REPORT_STEP, ServerState
from server.store import SessionRecord
from sp2p.proto.constants import Role


class FakePeer:
    closed = False

    def __init__(self) -> None:
        self.last_activity = time.monotonic()


def test_report_yields_between_steps_and_touches_every_session(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 2 * REPORT_STEP + 500
    st = ServerState(ServerConfig.from_mapping({"max_sessions": n, "max_sessions_per_ip": n}))
    records = []
    for _ in range(n):
        record = st.store.create("10.0.0.1", version=2, client_type="cli", node=st.node)
        assert isinstance(record, SessionRecord)
        st.router.attach(record.id, Role.SENDER, FakePeer())  # type: ignore[arg-type]
        records.append(record)
    before = {r.id: st.store.get(r.id).last_seen for r in records}  # type: ignore[union-attr]
    time.sleep(0.01)  # the store's clock moves on before the report
    yields: list[float] = []
    monkeypatch.setattr(state_module.time, "sleep", lambda s: yields.append(s))
    st.report_activity()
    assert yields == [0, 0], "one yield between each two steps"
    after = {r.id: st.store.get(r.id).last_seen for r in records}  # type: ignore[union-attr]
    assert all(after[sid] > before[sid] for sid in before), "every active session touched"

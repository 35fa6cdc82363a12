"""Numbers the README, man sp2p and docs/protocol-extensions.md state about the CLI's (and a
Redis node's) behaviour are the code's constants: each phrase below is built from the constant,
so changing one without the docs fails here."""

from __future__ import annotations

import pytest

from server.redis_store import HEARTBEAT_TTL_MS
from server.state import HEARTBEAT_EVERY
from sp2p.flags import SEND_FLAGS
from sp2p.flow.heal import RACE_TIMEOUT
from sp2p.flow.send import SMALL_INPUT
from sp2p.flow.session import KEEPALIVE_INTERVAL
from sp2p.fs.names import MAX_COMPONENT_BYTES
from sp2p.fs.partials import MAX_AGE
from sp2p.proto.adapt import FAR_RTT
from sp2p.proto.constants import MAX_CONTROL_SIZE, MAX_PARALLEL_STREAMS
from sp2p.proto.heal import REPLAY_WINDOW
from sp2p.proto.liveness import (
    HEAL_DEAD_AFTER,
    HEAL_HEARTBEAT_INTERVAL,
    HEARTBEAT_DEAD_AFTER,
    HEARTBEAT_INTERVAL,
    IDLE_TIMEOUT,
    PROGRESS_FLOOR,
    PROGRESS_WINDOW,
)
from sp2p.proto.parallel import PARALLEL_THRESHOLD
from tests.dist.helpers import REPO_ROOT
from tests.dist.test_man_pages import plain

README = " ".join((REPO_ROOT / "README.md").read_text().split())
MAN = " ".join(plain("sp2p.1").split())
PROTOCOL = " ".join((REPO_ROOT / "docs" / "protocol-extensions.md").read_text().split())

DAYS, MIB, KIB = 86400, 1 << 20, 1 << 10

#: (phrase, where it must appear); each phrase is made from the constant it states
PHRASES = [
    (f"Partials untouched for {MAX_AGE / DAYS:g} days", (README, MAN)),
    (f"the last {REPLAY_WINDOW // MIB} MiB it sent", (README, MAN)),
    (f"a dead path is noticed within about {HEAL_DEAD_AFTER:g} s", (README, MAN)),
    (f"a transfer of {PARALLEL_THRESHOLD // MIB} MiB or more", (README,)),
    (f"opens up to {MAX_PARALLEL_STREAMS} parallel TCP connections", (README,)),
    (f"2–{MAX_PARALLEL_STREAMS} force", (README,)),
    (f"2\N{EN DASH}{MAX_PARALLEL_STREAMS} forces that many", (MAN,)),
    (f"round trip ≥ {FAR_RTT * 1000:g} ms", (README,)),
    (f"a round trip of {FAR_RTT * 1000:g} ms or more", (MAN,)),
    (f"under {SMALL_INPUT // KIB} KiB", (README, MAN)),
    (f"at most {MAX_COMPONENT_BYTES} bytes", (README, MAN)),
    (f"Silent for {HEARTBEAT_DEAD_AFTER:g} s after it has sent a heartbeat ({IDLE_TIMEOUT:g} s", (README,)),
    (f"at least {PROGRESS_FLOOR // KIB} KiB in every {PROGRESS_WINDOW / 60:g} minutes", (README,)),
    (f"under {PROGRESS_FLOOR // KIB} KiB in {PROGRESS_WINDOW / 60:g} minutes", (MAN,)),
    (f"bodies are JSON objects (≤ {MAX_CONTROL_SIZE} bytes", (PROTOCOL,)),
    (f"its `file-info` message every {KEEPALIVE_INTERVAL:g} s", (PROTOCOL,)),
    (f"no frame for {HEAL_HEARTBEAT_INTERVAL:g} s (the original rule: {HEARTBEAT_INTERVAL:g} s)", (PROTOCOL,)),
    (f"arrived for {HEAL_DEAD_AFTER:g} s is taken as gone", (PROTOCOL,)),
    (f"(the original rule: {HEARTBEAT_DEAD_AFTER:g} s after a heartbeat was seen, else {IDLE_TIMEOUT:g} s)",
     (PROTOCOL,)),
    (f"each one is given at most {RACE_TIMEOUT:g} s", (PROTOCOL,)),
    (f"at least the last {REPLAY_WINDOW // MIB} MiB", (PROTOCOL,)),
    # a node's last beat came up to one beat before it died; the others look once a beat
    (f"hear `peer-left` {HEARTBEAT_TTL_MS / 1000 - HEARTBEAT_EVERY:g}–{HEARTBEAT_TTL_MS / 1000 + HEARTBEAT_EVERY:g} s "
     f"after it died (its heartbeat lives {HEARTBEAT_TTL_MS / 1000:g} s; the others look every second)", (README,)),
]


@pytest.mark.parametrize(("phrase", "docs"), PHRASES, ids=[p for p, _ in PHRASES])
def test_the_docs_state_the_constant(phrase: str, docs: tuple[str, ...]) -> None:
    for text in docs:
        name = {id(README): "README", id(MAN): "man sp2p", id(PROTOCOL): "protocol-extensions.md"}[id(text)]
        assert phrase in text, f"{name} lacks: {phrase}"


def test_the_parallel_flag_help_states_the_most_streams() -> None:
    assert f"2-{MAX_PARALLEL_STREAMS} force" in SEND_FLAGS["parallel"][1]

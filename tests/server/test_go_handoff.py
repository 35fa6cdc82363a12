"""The original Go CLI through our server's four workers with the handoff on (server/handoff.py,
docs/server-handoff.md): a receiver whose connection moves to its sender's worker must not
notice. REAL gunicorn with four gevent workers and a real redis-server; the Go CLI and ours as
peers. The kernel spreads connections over the workers by address and port, so transfers are
run until the server counted moved connections during them (bounded), and every one of them
must complete byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.e2e.harness import cli_env, finish, kill, read_code, spawn
from tests.server.helpers import wait_until
from tests.server.test_handoff import handoffs
from tests.support.go_server import go_finish, go_sender, spawn_go
from tests.support.server_proc import ServerProc

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: transfers tried per pair of programs before giving up on seeing two moved: 3 in 4 receivers
#: land on another worker than their sender, so 12 transfers with under 2 moved is ~3e-6
MAX_TRANSFERS = 12
WANT_MOVED = 2


def _moved(server: ServerProc) -> float:
    return handoffs(server).get("moved", 0)


def _one_transfer(sender_go: bool, receiver_go: bool, env: dict[str, str], src: Path, out: Path) -> None:
    """One transfer of `src` into the empty folder `out`, both ends ending 0."""
    if sender_go:
        go, code = go_sender([str(src)], env)
        ours_send = None
    else:
        ours_send = spawn(["send", str(src)], env)
        code = read_code(ours_send)
        go = None
    try:
        if receiver_go:
            receiver = spawn_go(["receive", "-output", str(out), code], env)
            r_rc, r_out = go_finish(receiver)
        else:
            result = finish(spawn(["receive", "-yes", "-output", str(out), code], env), timeout=60)
            r_rc, r_out = result.rc, result.err
        if go is not None:
            s_rc, s_out = go_finish(go)
        else:
            assert ours_send is not None
            sent = finish(ours_send, timeout=60)
            s_rc, s_out = sent.rc, sent.err
    finally:
        if go is not None:
            go.close(force=True)
        if ours_send is not None:
            kill(ours_send)
    assert (s_rc, r_rc) == (0, 0), s_out + r_out
    assert hashlib.sha256((out / src.name).read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


@pytest.mark.parametrize(("sender_go", "receiver_go"), [(True, True), (True, False), (False, True)],
                         ids=["go-to-go", "go-to-ours", "ours-to-go"])
def test_go_clis_do_not_notice_the_handoff(sender_go: bool, receiver_go: bool, four: ServerProc,
                                           tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env = cli_env(four.http_url, home)
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(300_000))
    before = _moved(four)
    for n in range(MAX_TRANSFERS):
        out = tmp_path / f"out{n}"
        out.mkdir()
        _one_transfer(sender_go, receiver_go, env, src, out)
        # other workers' counts reach /metrics within a second (batched)
        if wait_until(lambda: _moved(four) - before >= WANT_MOVED, timeout=2):
            break
    assert _moved(four) - before >= WANT_MOVED, (n + 1, handoffs(four))
    assert "Traceback" not in four.stderr_text()

"""A giver worker that dies with offers still in its taker's mailbox (server/handoff.py).

REAL gunicorn with four gevent workers and a real redis-server. The taker (the senders'
worker) is SIGSTOPped so the offers wait in the mailbox, where the kernel holds each
receiver's connection: no process has it (`ss -tnp`). The giver is SIGKILLed before it can
take them back. When the taker runs again, the link's end tells it the giver is gone and it
serves what the mailbox holds: every receiver pairs with its sender, one process holds each
connection, and when they leave the taker is back to the descriptors it had before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from tests.server.helpers import Client, wait_until
from tests.server.test_handoff import _nets, client_on, handoffs, held_by, holders, join_text
from tests.server.workers import children
from tests.support.server_proc import ServerProc

PAIRS = 3


def sockets_of(pid: int) -> Counter[str]:
    """A process's TCP sockets, handoff mailboxes (SOCK_SEQPACKET) and givers' links to it
    (accepted on its handoff socket); its Redis connections are left out (one opens lazily)."""
    found: Counter[str] = Counter()
    for kind, args in (("tcp", ("-t", "state", "all")), ("unix", ("-x", "state", "all"))):
        for line in subprocess.run(["ss", "-Hnp", *args], capture_output=True, text=True, check=True).stdout.splitlines():
            if f"pid={pid}," not in line:
                continue
            if kind == "tcp":
                found["tcp"] += 1
            elif line.startswith("u_seq"):
                found["mailbox"] += 1
            elif "sp2p-handoff" in line and "LISTEN" not in line:
                found["link"] += 1
    return found


def in_flight(server: ServerProc, client: Client) -> bool:
    """The server side of `client`'s connection is open, and no process holds it (it sits
    in a mailbox, as a descriptor passed and not yet received)."""
    host, port = client.ws.sock.getsockname()[:2]
    return holders(server).get(f"{host}:{port}") == set()


def _hello_on(four: ServerProc, home: int) -> tuple[Client, str]:
    sender = client_on(four, {home})
    sender.send("hello", {"version": 2, "clientType": "cli"})
    return sender, sender.expect("welcome")["sessionId"]


@pytest.mark.slow
def test_offers_a_killed_giver_left_in_the_mailbox_are_served_by_the_taker(four: ServerProc) -> None:
    workers = children(four)
    home = min(workers)  # the senders' worker: the taker
    giver = max(workers)  # the receivers' worker
    senders = [_hello_on(four, home) for _ in range(PAIRS)]
    receivers = [client_on(four, {giver}, next(_nets)) for _ in range(PAIRS)]
    sockets_before = sockets_of(home)
    os.kill(home, signal.SIGSTOP)
    stopped = True
    try:
        for receiver, (_, sid) in zip(receivers, senders, strict=True):
            receiver.send_raw(join_text(sid))
        # an offer sent: the giver let go of the connection, the stopped taker has not read it;
        # the giver dies at once, within TAKE_BACK_AFTER of it (the others may be offered too)
        assert wait_until(lambda: any(in_flight(four, r) for r in receivers), timeout=10, interval=0.005)
        os.kill(giver, signal.SIGKILL)
        assert wait_until(lambda: giver not in children(four), timeout=10)
        in_mailbox = [r for r in receivers if in_flight(four, r)]
        assert in_mailbox, "the giver took every offer back before it was killed"
        os.kill(home, signal.SIGCONT)
        stopped = False
        for receiver, (sender, _) in zip(receivers, senders, strict=True):
            if receiver not in in_mailbox:
                continue
            receiver.expect("welcome", timeout=10)
            assert sender.expect("peer-joined", timeout=10) == {"clientType": "cli"}
            sender.send("crypto", {"k": 1})
            assert receiver.expect("crypto") == {"k": 1}
            receiver.send("answer", {"a": 1})
            assert sender.expect("answer") == {"a": 1}
            assert held_by(four, receiver) == {home}  # one holder: the taker
        for receiver in receivers:
            if receiver not in in_mailbox:  # still the giver's: it died with it
                assert receiver.closed_within(10)
            receiver.close()
        for sender, _ in senders:
            sender.close()
    finally:
        if stopped:
            os.kill(home, signal.SIGCONT)
    # the senders' and receivers' connections, the dead giver's link and mailbox: all given back
    after = Counter({**sockets_before, "tcp": sockets_before["tcp"] - PAIRS})
    assert wait_until(lambda: sockets_of(home) == after, timeout=15), (sockets_of(home), after)
    assert home in children(four)
    assert "Traceback" not in four.stderr_text()


@pytest.mark.slow
def test_every_offer_a_stopped_taker_leaves_unread_is_taken_back(four: ServerProc) -> None:
    """Offers sent a while apart to a stopped taker: its giver serves each one, although a
    later one is not due yet when the mailbox's one take-back timer fires for the first
    (a timer that took back only what was due then, and slept until the next offer, left
    the others in the mailbox for as long as the taker was stopped)."""
    workers = children(four)
    home = min(workers)  # the senders' worker: the taker
    giver = max(workers)  # the receivers' worker
    senders = [_hello_on(four, home) for _ in range(PAIRS)]
    receivers = [client_on(four, {giver}, next(_nets)) for _ in range(PAIRS)]
    os.kill(home, signal.SIGSTOP)
    stopped = True
    try:
        for receiver, (_, sid) in zip(receivers, senders, strict=True):
            receiver.send_raw(join_text(sid))
            time.sleep(0.15)  # apart: the next offer falls due after this one
        for receiver in receivers:
            receiver.expect("welcome", timeout=10)  # served while the taker is still stopped
        os.kill(home, signal.SIGCONT)
        stopped = False
    finally:
        if stopped:
            os.kill(home, signal.SIGCONT)
    for receiver, (sender, _) in zip(receivers, senders, strict=True):
        assert sender.expect("peer-joined", timeout=10) == {"clientType": "cli"}
        sender.send("crypto", {"k": 1})
        assert receiver.expect("crypto") == {"k": 1}
        assert held_by(four, receiver) == {giver}
        receiver.close()
        sender.close()
    assert handoffs(four).get("taken_back", 0) == PAIRS
    assert "Traceback" not in four.stderr_text()

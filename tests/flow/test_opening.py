"""A receiver's opening (client.md §4.4): join and, as Go's receiver does, its key at once,
sent by EarlySignal's connect thread the moment the socket is open (issue 12); the key waits
while the user is still to accept. Against a real sp2p-server, with a real sender's socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sp2p.config import Config, signaling_url
from sp2p.flow.early import EarlySignal
from sp2p.flow.session import hello, receiver_opening, wait_welcome
from sp2p.net.signaling import SignalClient
from sp2p.proto.heal import HEAL_VERSION
from sp2p.proto.resume import RESUME_VERSION
from sp2p.proto.signal import Crypto, Envelope, SignalType
from tests.support.server_proc import NO_LIMIT_FLAGS, ServerProc, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProc]:
    proc = start_server(*NO_LIMIT_FLAGS, timeout=60)
    try:
        yield proc
    finally:
        proc.stop()


def _waiting_sender(url: str) -> tuple[SignalClient, str]:
    sender = SignalClient(url)
    sender.send(Envelope.build(SignalType.HELLO, hello()))
    return sender, wait_welcome(sender).session_id


@pytest.mark.parametrize("to_stdout", [False, True])
def test_the_key_reaches_the_sender_before_anyone_takes_the_connection(
    server: ServerProc, to_stdout: bool
) -> None:
    url = signaling_url(server.http_url)
    sender, session_id = _waiting_sender(url)
    early = EarlySignal(url, first=lambda: receiver_opening(session_id, Config(), to_stdout=to_stdout,
                                                            key_now=True))
    try:
        assert sender.wait_for({SignalType.PEER_JOINED}, timeout=10).type == SignalType.PEER_JOINED
        crypto = Crypto.from_payload(sender.wait_for({SignalType.CRYPTO}, timeout=10).payload)
        receiver = early.result()  # only now does anyone take the receiver's side
        opening = early.opening
        assert opening is not None and crypto.public_key == opening.keys.public_b64()
        assert (crypto.resume, crypto.heal, crypto.parallel_tcp) == (
            0 if to_stdout else RESUME_VERSION, HEAL_VERSION, True)
        assert wait_welcome(receiver).session_id == session_id
        receiver.close()
    finally:
        early.close()
        sender.close()


def test_the_key_waits_while_the_user_decides(server: ServerProc) -> None:
    url = signaling_url(server.http_url)
    sender, session_id = _waiting_sender(url)
    early = EarlySignal(url, first=lambda: receiver_opening(session_id, Config(), to_stdout=False,
                                                            key_now=False))
    try:
        assert sender.wait_for({SignalType.PEER_JOINED}, timeout=10).type == SignalType.PEER_JOINED
        with pytest.raises(TimeoutError):
            sender.wait_for({SignalType.CRYPTO}, timeout=0.5)
        receiver = early.result()
        opening = early.opening
        assert opening is not None and [e.type for e in opening.messages] == [SignalType.JOIN]
        receiver.send(opening.crypto)  # what run_receive does once the user said yes
        crypto = Crypto.from_payload(sender.wait_for({SignalType.CRYPTO}, timeout=10).payload)
        assert crypto.public_key == opening.keys.public_b64()
        receiver.close()
    finally:
        early.close()
        sender.close()

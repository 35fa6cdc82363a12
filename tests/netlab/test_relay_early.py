"""A peer that already asked for the relay ends the other side's first attempt early (client.md §4.4 step 5).

Two in-process peers (real server, real coturn, real symmetric NATs) run the connect flow
with different first-attempt timeouts: the patient one would wait an hour, so the test can
only finish if the impatient peer's relay-retry ends that wait. No clock is asserted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from sp2p.flow.connect import ConnectOptions, PeerInfo
from sp2p.flow.relay import establish_or_relay
from sp2p.flow.session import hello, join, parse_peer_crypto, wait_welcome
from sp2p.net.channel import TransportKind
from sp2p.net.signaling import SignalClient
from sp2p.proto.codes import generate_seed
from sp2p.proto.constants import Role
from sp2p.proto.keys import KeyPair, SessionKeys, derive_session_keys
from sp2p.proto.signal import Crypto, Envelope, SignalType
from tests.netlab import Nat

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.webrtc]

IMPATIENT = 2.0  # s: gives up its first attempt almost at once
PATIENT = 3600.0  # s: would hang the test unless the early end works
RESULT_TIMEOUT = 120.0
GREETING = b"hello through the relay"
GAVE_UP = "the peer gave up on a direct connection"


@dataclass
class PeerRun:
    role: Role
    timeout: float
    statuses: list[str] = field(default_factory=list)

    def status(self, method: str, detail: str) -> None:
        self.statuses.append(f"{method}: {detail}")


def _connect(
    run: PeerRun, ws_url: str, seed: bytes, session_ids: queue.Queue[str], exchange: Callable[..., bytes]
) -> tuple[str, bytes]:
    """One peer: signaling handshake, then establish_or_relay; returns (transport, bytes read)."""
    signal = SignalClient(ws_url)
    pair = KeyPair.generate()
    try:
        if run.role is Role.SENDER:
            signal.send(Envelope.build(SignalType.HELLO, hello()))
            welcome = wait_welcome(signal)
            session_id = welcome.session_id
            session_ids.put(session_id)
            signal.wait_for({SignalType.PEER_JOINED}, timeout=30)
            signal.send(Envelope.build(SignalType.CRYPTO, Crypto(public_key=pair.public_b64())))
        else:
            session_id = session_ids.get(timeout=30)
            signal.send(Envelope.build(SignalType.JOIN, join(session_id)))
            signal.send(Envelope.build(SignalType.CRYPTO, Crypto(public_key=pair.public_b64())))
            welcome = wait_welcome(signal)
        peer_key = parse_peer_crypto(signal.wait_for({SignalType.CRYPTO}, timeout=30)).public
        sender_pub, receiver_pub = (
            (pair.public, peer_key) if run.role is Role.SENDER else (peer_key, pair.public)
        )
        keys: SessionKeys = derive_session_keys(
            role=run.role, seed=seed, session_id=session_id,
            private=pair.private, sender_pub=sender_pub, receiver_pub=receiver_pub,
        )  # fmt: skip
        opts = ConnectOptions(ice_servers=[s.to_payload() for s in welcome.ice_servers], timeout=run.timeout)
        channel = establish_or_relay(
            signal, keys, PeerInfo(), opts,
            turn_available=welcome.turn_available, allow_relay=True, status=run.status,
        )  # fmt: skip
    finally:
        signal.close()
    try:
        return channel.transport, exchange(channel)
    finally:
        channel.close()


@pytest.mark.parametrize(
    "impatient", [Role.SENDER, Role.RECEIVER], ids=["sender-gives-up", "receiver-gives-up"]
)
def test_peer_relay_retry_ends_the_first_attempt_early(netlab, impatient):
    lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC)
    coturn = lab.start_coturn()
    server = lab.start_server(
        extra_args=["-turn-servers", f"{coturn.stun_url},{coturn.turn_url}", "-turn-secret", coturn.secret,
                    # the server's default 5 s before TURN credentials would hold back the relay
                    # retry the impatient peer sends at IMPATIENT s: the wait ended early is the
                    # patient peer's, which this leaves as it was
                    "-turn-delay", "0s"]
    )  # fmt: skip
    ws_url = f"ws://{server.ip}:{server.port}/ws"
    seed = generate_seed()
    session_ids: queue.Queue[str] = queue.Queue()
    runs = {role: PeerRun(role, IMPATIENT if role is impatient else PATIENT) for role in Role}
    received = threading.Event()

    def send_greeting(channel):  # type: ignore[no-untyped-def]
        channel.send(GREETING)
        received.wait(30)  # keep the channel open until the receiver has read it
        return b""

    def read_greeting(channel):  # type: ignore[no-untyped-def]
        got = b""
        while len(got) < len(GREETING):
            got += channel.recv(timeout=30)
        received.set()
        return got

    sender = lab.submit("h1", _connect, runs[Role.SENDER], ws_url, seed, session_ids, send_greeting)
    receiver = lab.submit("h2", _connect, runs[Role.RECEIVER], ws_url, seed, session_ids, read_greeting)
    try:
        send_transport, _ = sender.result(RESULT_TIMEOUT)
        recv_transport, got = receiver.result(RESULT_TIMEOUT)
    finally:
        received.set()
    detail = f"statuses: {runs}"
    assert (send_transport, recv_transport) == (TransportKind.WEBRTC_RELAY, TransportKind.WEBRTC_RELAY), detail
    assert got == GREETING
    patient = runs[Role.RECEIVER if impatient is Role.SENDER else Role.SENDER]
    assert any(GAVE_UP in s for s in patient.statuses), detail
    assert not any(GAVE_UP in s for s in runs[impatient].statuses), detail

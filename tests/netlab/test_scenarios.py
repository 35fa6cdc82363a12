"""End-to-end `sp2p send`/`receive` across real NATs (namespaces): which transport wins where.

Each transfer checks the transport named in both summaries and the SHA-256 of the file received.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netlab import Nat
from tests.netlab.cli_output import transport_of, wait_code
from tests.netlab.test_upnp import gateway_entry

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.e2e]

MARKER = b"sp2p-netlab-plaintext-marker:"
RUN_TIMEOUT = 120.0
#: s: the first direct attempt where it cannot succeed (the shipped 30 s would only be waited out);
#: the relay retry keeps the shipped limit (tests/support/scripted_cli.py --first-attempt)
DOOMED_ATTEMPT = 2.0
#: the server's wait before TURN credentials (-turn-delay, 5 s by default: time for a direct path
#: to win) outlasted DOOMED_ATTEMPT; behind two symmetric NATs no direct path can win
NO_TURN_DELAY = ("-turn-delay", "0s")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    send_rc: int
    send_out: str
    recv_rc: int
    recv_out: str
    received: Path | None

    def transports(self) -> tuple[str | None, str | None]:
        return transport_of(self.send_out), transport_of(self.recv_out)

    def assert_ok(self, transport: str, payload: bytes) -> None:
        detail = f"\n--- sender ---\n{self.send_out}\n--- receiver ---\n{self.recv_out}"
        assert (self.send_rc, self.recv_rc) == (0, 0), detail
        assert self.transports() == (transport, transport), detail
        assert self.received is not None and self.received.is_file(), detail
        got = hashlib.sha256(self.received.read_bytes()).hexdigest()
        assert got == hashlib.sha256(payload).hexdigest()


def transfer(
    lab, tmp: Path, payload: bytes, *, send_args=(), recv_args=(), sender="h1", receiver="h2", doomed=False,
) -> Outcome:  # fmt: skip
    """`doomed`: the direct attempt cannot connect, so both CLIs give it DOOMED_ATTEMPT s only."""
    tmp.mkdir(parents=True, exist_ok=True)
    tag = tmp.name  # distinct log names for transfers running at once
    home, src, out = tmp / "home", tmp / "src", tmp / "out"
    for d in (home, src, out):
        d.mkdir()
    (src / "payload.bin").write_bytes(payload)
    env = {
        "SP2P_SERVER": f"http://{lab.ip('pub')}:8080",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PYTHONPATH": str(REPO),
    }
    assert "SP2P_ALLOW_LOOPBACK" not in os.environ
    cli = [sys.executable, "-m", "sp2p"]
    if doomed:
        cli = [sys.executable, "-m", "tests.support.scripted_cli", "--first-attempt", str(DOOMED_ATTEMPT), "--"]
    # a session of its own: no controlling terminal, so no relay prompt on the developer's tty
    send = lab.run(
        sender, [*cli, "send", *send_args, str(src / "payload.bin")],
        env=env, name=f"send-{tag}", start_new_session=True,
    )  # fmt: skip
    code = wait_code(lab, send)
    recv = lab.run(
        receiver, [*cli, "receive", *recv_args, "-output", str(out), code],
        env=env, name=f"recv-{tag}", start_new_session=True,
    )  # fmt: skip
    send_rc, recv_rc = send.wait(RUN_TIMEOUT), recv.wait(RUN_TIMEOUT)
    received = out / "payload.bin"
    return Outcome(
        send_rc, lab.output_of(send), recv_rc, lab.output_of(recv), received if received.exists() else None
    )


def payload(size: int = 3 << 20) -> bytes:
    return os.urandom(size)


def test_same_lan_uses_tcp(netlab, tmp_path):
    lab = netlab(same_lan=True)
    lab.start_server()
    data = payload()
    transfer(lab, tmp_path, data).assert_ok("TCP", data)


def test_port_restricted_nats_use_webrtc_via_stun(netlab, tmp_path):
    lab = netlab(Nat.PORT_RESTRICTED, Nat.PORT_RESTRICTED)
    coturn = lab.start_coturn()
    lab.start_server(extra_args=["-turn-servers", coturn.stun_url])
    data = payload()
    transfer(lab, tmp_path, data).assert_ok("WebRTC", data)


#: like packaging/turnserver.conf, which denies every private range: here the NATed LANs
#: (10.201.1-255.x) stand for those and pub's segment (10.201.0.x) for the public Internet
DENY_LANS = ("--denied-peer-ip=10.201.1.0-10.201.255.255",)


def _symmetric_lab(netlab, coturn_args=()):  # type: ignore[no-untyped-def]
    lab = netlab(Nat.SYMMETRIC, Nat.SYMMETRIC)
    coturn = lab.start_coturn(extra_args=coturn_args)
    lab.start_server(
        extra_args=["-turn-servers", f"{coturn.stun_url},{coturn.turn_url}", "-turn-secret", coturn.secret,
                    *NO_TURN_DELAY]
    )  # fmt: skip
    return lab


def test_symmetric_nats_refuse_relay_without_consent(netlab, tmp_path):
    lab = _symmetric_lab(netlab)
    small = payload(64 << 10)
    # at once in one lab: nobody allows the relay / only the sender does (no TTY: no prompt)
    with ThreadPoolExecutor(2) as pool:
        nobody = pool.submit(transfer, lab, tmp_path / "nobody", small, doomed=True)
        one_side = pool.submit(transfer, lab, tmp_path / "oneside", small, send_args=("-allow-relay",), doomed=True)
        outcomes = {"nobody": nobody.result(), "oneside": one_side.result()}
    for name, out in outcomes.items():
        detail = f"{name}\n--- sender ---\n{out.send_out}\n--- receiver ---\n{out.recv_out}"
        assert out.send_rc != 0 and out.recv_rc != 0, detail
        assert out.received is None, detail
        assert "Traceback" not in out.send_out + out.recv_out, detail
        assert "-allow-relay" in out.recv_out, detail  # the receiver was not allowed: names the flag
    assert "-allow-relay" in outcomes["nobody"].send_out
    assert "peer declined the relay" in outcomes["oneside"].send_out  # it allowed; the peer said no


@pytest.mark.parametrize("coturn_args", [(), DENY_LANS], ids=["coturn-defaults", "coturn-denies-lans"])
def test_symmetric_nats_relay_with_consent_carries_only_ciphertext(netlab, tmp_path, coturn_args):
    lab = _symmetric_lab(netlab, coturn_args)
    data = MARKER * ((2 << 20) // len(MARKER))
    # every datagram in pub: client<->coturn legs on br0, relay<->relay legs on lo
    capture = lab.capture("pub", "any", "udp")
    send_relay = ("-allow-relay", "-compress", "0")  # raw, so the marker would show if unencrypted
    allowed_out = transfer(lab, tmp_path / "allowed", data, send_args=send_relay, recv_args=("-allow-relay",),
                           doomed=True)
    pcap = capture.stop()
    allowed_out.assert_ok("WebRTC (relay)", data)
    assert MARKER in allowed_out.received.read_bytes()  # type: ignore[union-attr]
    assert len(pcap) > len(data)  # the data crossed pub (the relay)...
    assert MARKER not in pcap  # ...encrypted
    turn_log = lab.output_of(lab.services["coturn"].proc)
    assert turn_log.count("incoming packet ALLOCATE processed, success") >= 2, turn_log[-3000:]
    # a failed relay send makes coturn drop the allocation (then 438/400 for that client)
    assert "udp send:" not in turn_log and "error 400" not in turn_log, turn_log[-3000:]
    if coturn_args:  # the checks towards the peers' LAN addresses were refused, harmlessly
        assert "CHANNEL_BIND processed, error 403" in turn_log, turn_log[-3000:]


def test_upnp_mapping_carries_tcp_and_is_removed(netlab, tmp_path):
    lab = netlab(Nat.PORT_RESTRICTED, Nat.PORT_RESTRICTED)
    lab.start_miniupnpd("r1")
    lab.start_server()
    data = payload()
    outcome = transfer(lab, tmp_path, data, send_args=("-v",))
    outcome.assert_ok("TCP", data)
    mapped = re.search(r"UPnP mapped (\S+):(\d+)", outcome.send_out)
    assert mapped is not None, outcome.send_out
    assert mapped.group(1) == lab.ip("r1")
    port = int(mapped.group(2))
    assert lab.call("h1", gateway_entry, lab.hosts["r1"].lan_ip, port) is None


def test_forced_transports(netlab, tmp_path):
    lab = netlab(Nat.PORT_RESTRICTED, Nat.PORT_RESTRICTED)
    lab.start_server()
    tcp_only = ("-transport", "tcp")
    failed = transfer(lab, tmp_path / "tcp", payload(64 << 10), send_args=tcp_only, recv_args=tcp_only,
                      doomed=True)
    assert failed.send_rc != 0 and failed.recv_rc != 0
    assert failed.received is None
    for out in (failed.send_out, failed.recv_out):
        assert "connection" in out.lower() and "Traceback" not in out, out

    lan = netlab(same_lan=True)
    lan.start_server()
    webrtc = ("-transport", "webrtc")
    data = payload()
    transfer(lan, tmp_path / "webrtc", data, send_args=webrtc, recv_args=webrtc).assert_ok("WebRTC", data)

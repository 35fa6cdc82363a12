"""A hostile signaling server between two real CLIs talking WebRTC (they need a namespace each:
aiortc never offers loopback candidates).

- C12: the server swaps the X25519 keys and the SDP fingerprints, so both DTLS connections end
  at the attacker, which relays the data channels: both CLIs exit 5 and the attacker's relay saw
  only key-confirmation messages, never the file's name, Metadata or data.
- Issue 16 item 5 (T19): the server relays thousands of ICE candidates to each CLI: the client
  uses a bounded number with one verbose line, its memory stays where a normal run's is, and the
  transfer completes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sp2p.proto.constants import CONFIRM_BYTES
from sp2p.status import ExitStatus
from tests.netlab import PUB_IP, Lab, Nat
from tests.netlab.cli_output import transport_of, wait_code
from tests.support.evil_mitm import Mitm, never_readable
from tests.support.evil_server import EvilServer, Rewrite
from tests.support.files import sha256_file

pytestmark = [pytest.mark.netns, pytest.mark.e2e]

MESSAGE = "sp2p: error: key confirmation failed: wrong code, or someone tampered with the connection"
HINT = "sp2p: hint: check that both sides used the same code; if they did, the connection may be intercepted"
RUN_TIMEOUT = 120.0
#: candidates of each kind the hostile server adds after each description
FLOOD = 2000


class PeakRss:
    """Samples a process's peak resident set (VmHWM) until it exits."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.kib = 0
        self._status = Path(f"/proc/{proc.pid}/status")
        self._thread = threading.Thread(target=self._sample, args=(proc,), daemon=True)
        self._thread.start()

    def _sample(self, proc: subprocess.Popen[bytes]) -> None:
        while proc.poll() is None:
            try:
                match = re.search(r"^VmHWM:\s+(\d+) kB", self._status.read_text(), re.M)
            except OSError:  # exited between poll() and the read
                return
            if match:
                self.kib = max(self.kib, int(match.group(1)))
            threading.Event().wait(0.05)

    def result(self) -> int:
        self._thread.join(RUN_TIMEOUT)
        return self.kib


class Run:
    """A sender on h1 and a receiver on h2, both through the hostile server in pub."""

    def __init__(self, lab: Lab, server_url: str, tmp: Path, payload: bytes, args: list[str],
                 send_args: tuple[str, ...] = ()) -> None:
        self.lab, self.payload, self.out = lab, payload, tmp / "out"
        home, src = tmp / "home", tmp / "src"
        for d in (home, src, self.out):
            d.mkdir(parents=True)
        self.src = src / "quarterly-secret.bin"
        self.src.write_bytes(payload)
        env = {"SP2P_SERVER": server_url, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        tag = tmp.name
        cli = [sys.executable, "-m", "sp2p"]
        self.send = lab.run("h1", [*cli, "send", *args, *send_args, str(self.src)], env=env, name=f"send-{tag}",
                            start_new_session=True)
        code = wait_code(lab, self.send)
        self.recv = lab.run("h2", [*cli, "receive", *args, "-output", str(self.out), code], env=env,
                            name=f"recv-{tag}", start_new_session=True)
        self.peaks = PeakRss(self.send), PeakRss(self.recv)

    def finish(self) -> tuple[int, int]:
        return self.send.wait(RUN_TIMEOUT), self.recv.wait(RUN_TIMEOUT)

    def outputs(self) -> tuple[str, str]:
        return self.lab.output_of(self.send), self.lab.output_of(self.recv)


@contextmanager
def hostile(lab: Lab, rewrite: Rewrite) -> Iterator[EvilServer]:
    lab.start_server()
    with EvilServer(f"ws://{PUB_IP}:8080/ws", rewrite, host=PUB_IP, netns=lab.ns("pub")) as evil:
        yield evil


def test_c12_sdp_fingerprint_swap_is_refused_and_the_attacker_reads_nothing(netlab: Any, tmp_path: Path) -> None:
    lab = netlab(Nat.NONE, Nat.NONE)
    payload = b"the plaintext the attacker wants " * 2000
    mitm = Mitm(PUB_IP)
    with hostile(lab, mitm.rewrite) as evil:
        run = Run(lab, evil.http_url, tmp_path, payload, ["-transport", "webrtc"])
        rcs = run.finish()
        evil.call(mitm.close())
    detail = "\n--- sender ---\n{}\n--- receiver ---\n{}".format(*run.outputs())
    assert rcs == (ExitStatus.SECURITY, ExitStatus.SECURITY), detail
    for output in run.outputs():
        assert MESSAGE in output and HINT in output and "Traceback" not in output, detail
    assert mitm.keys_swapped == 2
    # both descriptions now carry the attacker's certificate fingerprint, none of the peers'
    assert len(mitm.swapped_fingerprints) == 2
    for theirs, attackers in mitm.swapped_fingerprints:
        assert theirs and attackers and theirs.isdisjoint(attackers)
    seen = mitm.on("webrtc")
    assert {item.sender for item in seen} == {"sender", "receiver"}, f"not through the attacker: {detail}"
    never_readable(seen, [run.src.name.encode(), payload[:32]])
    # one key-confirmation MAC from each side, nothing after it
    assert sorted((item.sender, len(item.data)) for item in seen) == [
        ("receiver", CONFIRM_BYTES), ("sender", CONFIRM_BYTES)], seen
    assert list(run.out.iterdir()) == []


def _flood(msg: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """After each description: FLOOD well-formed candidates nobody answers and FLOOD junk ones."""
    if msg.get("type") not in ("offer", "answer"):
        return [msg]
    bogus = [{"type": "candidate", "payload": {
        "candidate": f"candidate:{i} 1 udp 2130706431 198.51.100.{i % 250 + 1} {10000 + i} typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}} for i in range(FLOOD)]
    junk = [{"type": "candidate", "payload": {"candidate": f"candidate:junk {i}"}} for i in range(FLOOD)]
    return [msg, *bogus, *junk]


def _transfer(lab: Lab, tmp: Path, rewrite: Rewrite) -> tuple[Run, tuple[int, int]]:
    with hostile(lab, rewrite) as evil:
        run = Run(lab, evil.http_url, tmp, bytes(range(256)) * 4096, ["-transport", "webrtc", "-v"])
        return run, run.finish()


def test_candidate_flood_between_two_clis_is_capped(netlab: Any, tmp_path: Path) -> None:
    """Issue 16 item 5 between real CLIs: 4,000 relayed candidates per side, 64 used."""
    lab = netlab(Nat.NONE, Nat.NONE)
    quiet, quiet_rcs = _transfer(lab, tmp_path / "quiet", lambda msg, role: [msg])
    flooded, rcs = _transfer(lab, tmp_path / "flooded", _flood)
    for run, codes in ((quiet, quiet_rcs), (flooded, rcs)):
        detail = "\n--- sender ---\n{}\n--- receiver ---\n{}".format(*run.outputs())
        assert codes == (0, 0), detail
        assert [transport_of(out) for out in run.outputs()] == ["WebRTC", "WebRTC"], detail
        assert sha256_file(run.out / run.src.name) == sha256_file(run.src)
    for output in flooded.outputs():
        dropped = [line for line in output.splitlines() if "ICE candidates from the peer" in line]
        assert len(dropped) == 1, output
    # memory: what a flood adds stays small (uncapped, 2,006 candidates took RSS from 36 to 77 MB)
    for side, base, peak in zip(("sender", "receiver"), quiet.peaks, flooded.peaks, strict=True):
        print(f"{side}: peak RSS {base.result() / 1024:.1f} MiB quiet, {peak.result() / 1024:.1f} MiB flooded")
        assert peak.result() <= base.result() + 16 * 1024, side



def test_c12_fingerprint_swap_alone_carries_only_ciphertext(netlab: Any, tmp_path: Path) -> None:
    """C12 without the key swap: the attacker terminates both DTLS connections and relays, the
    peers' own keys still hold. The transfer completes (the DTLS certificate is not bound into
    the key schedule: the Go original does not do it either) and every byte the attacker relayed
    is ciphertext: no name, no content, though nothing was compressed."""
    lab = netlab(Nat.NONE, Nat.NONE)
    payload = b"the plaintext the attacker wants " * 2000
    mitm = Mitm(PUB_IP, swap_keys=False)
    with hostile(lab, mitm.rewrite) as evil:
        run = Run(lab, evil.http_url, tmp_path, payload, ["-transport", "webrtc"], send_args=("-compress", "0"))
        rcs = run.finish()
        evil.call(mitm.close())
    detail = "\n--- sender ---\n{}\n--- receiver ---\n{}".format(*run.outputs())
    assert rcs == (0, 0), detail
    assert sha256_file(run.out / run.src.name) == sha256_file(run.src)
    assert mitm.keys_swapped == 0 and len(mitm.swapped_fingerprints) == 2
    seen = mitm.on("webrtc")
    assert sum(len(item.data) for item in seen if item.sender == "sender") > len(payload), "not relayed"
    never_readable(seen, [run.src.name.encode(), payload[:32], b"quarterly"])

"""A dropped link between two of our CLIs (iptables DROP in the sender's namespace) during a
single-file transfer: a short outage is ridden out with no user action, a long one fails
cleanly with the partial kept, and the re-run resumes (docs/protocol-extensions.md §1–2).

Only the peer-to-peer path is cut: the signaling server (pub) stays reachable, as when a
Wi-Fi link between two laptops drops but their Internet uplink does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netlab.cli_output import wait_code
from tests.netlab.lab import IPT, PUB_IP
from tests.netlab.netns import ns_sh
from tests.support.files import sha256_file

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.e2e]

SIZE = 160 << 20
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def payload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("heal-src") / "payload.bin"
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(SIZE >> 20):
            f.write(i.to_bytes(4, "big") + block[4:])
    return path


def partial_size(out: Path) -> int:
    sizes = [p.stat().st_size for p in out.iterdir() if re.fullmatch(r"\.sp2p-partial-[0-9a-f]{32}", p.name)]
    return max(sizes, default=0)


@contextlib.contextmanager
def p2p_blocked(lab, host: str) -> Iterator[None]:  # noqa: ANN001 - Lab
    """Drop everything `host` exchanges with anyone but the signaling server."""
    ns = lab.ns(host)
    rules = [["OUTPUT", "!", "-d", PUB_IP, "-j", "DROP"], ["INPUT", "!", "-s", PUB_IP, "-j", "DROP"]]
    for rule in rules:
        ns_sh(ns, [IPT, "-I", *rule])
    try:
        yield
    finally:
        for rule in rules:
            ns_sh(ns, [IPT, "-D", *rule])


#: a silent peer is noticed after this many seconds instead of the shipped 120 (the rule is
#: unchanged, tests/support/scripted_cli.py scales it), so a long outage fails in seconds
QUICK_IDLE = 15.0


class Run:
    def __init__(self, lab, tmp: Path, src: Path, out: Path, args: tuple[str, ...],  # noqa: ANN001
                 *, idle_timeout: float | None = None) -> None:
        home = tmp / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"SP2P_SERVER": f"http://{PUB_IP}:8080", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        cli = [sys.executable, "-m", "sp2p"]
        if idle_timeout is not None:
            cli = [sys.executable, "-m", "tests.support.scripted_cli", "--idle-timeout", str(idle_timeout), "--"]
        self.lab = lab
        self.send = lab.run("h1", [*cli, "send", *args, str(src)], env=env, name=f"send-{tmp.name}",
                            start_new_session=True)  # fmt: skip
        code = wait_code(lab, self.send)
        self.recv = lab.run("h2", [*cli, "receive", *args, "-output", str(out), code], env=env,
                            name=f"recv-{tmp.name}", start_new_session=True)  # fmt: skip

    def wait(self) -> tuple[int, str, int, str]:
        s, r = self.send.wait(RUN_TIMEOUT), self.recv.wait(RUN_TIMEOUT)
        return s, self.lab.output_of(self.send), r, self.lab.output_of(self.recv)


def wait_for_partial(run: Run, out: Path, share: float) -> None:
    deadline = time.monotonic() + 60
    while partial_size(out) < SIZE * share:
        assert time.monotonic() < deadline, run.lab.output_of(run.recv)
        assert run.recv.poll() is None, run.lab.output_of(run.recv)
        time.sleep(0.005)


@pytest.mark.parametrize("transport", ["tcp", "webrtc"])
def test_five_second_outage_completes_without_user_action(netlab, tmp_path, payload_file, transport):
    lab = netlab(same_lan=True)
    lab.start_server()
    out = tmp_path / "out"
    out.mkdir()
    run = Run(lab, tmp_path / "run", payload_file, out, ("-transport", transport))
    wait_for_partial(run, out, 0.1)
    with p2p_blocked(lab, "h1"):
        time.sleep(5)
    s_rc, s_out, r_rc, r_out = run.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert (s_rc, r_rc) == (0, 0), detail
    assert sha256_file(out / payload_file.name) == sha256_file(payload_file), detail
    assert not [p for p in out.iterdir() if p.name.startswith(".sp2p")], detail


def test_outage_longer_than_reconnect_fails_cleanly_then_rerun_resumes(netlab, tmp_path, payload_file):
    lab = netlab(same_lan=True)
    lab.start_server()
    out = tmp_path / "out"
    out.mkdir()
    run = Run(lab, tmp_path / "first", payload_file, out, ("-transport", "tcp", "-reconnect", "5s"),
              idle_timeout=QUICK_IDLE)
    wait_for_partial(run, out, 0.1)
    with p2p_blocked(lab, "h1"):
        s_rc, s_out, r_rc, r_out = run.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert s_rc != 0 and r_rc != 0, detail
    assert "Traceback" not in s_out + r_out, detail
    assert "reconnecting for up to 5s" in s_out + r_out, detail
    assert "could not be re-established" in s_out + r_out, detail
    assert "Kept" in r_out and "resume" in r_out, detail
    kept = partial_size(out)
    assert 0 < kept < SIZE, detail
    assert not (out / payload_file.name).exists()
    rerun = Run(lab, tmp_path / "second", payload_file, out, ("-transport", "tcp"))
    s_rc, s_out, r_rc, r_out = rerun.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert (s_rc, r_rc) == (0, 0), detail
    assert "Resuming at" in r_out, detail
    assert sha256_file(out / payload_file.name) == sha256_file(payload_file), detail


def test_rules_are_gone(netlab):  # the context manager removes what it inserted
    lab = netlab(same_lan=True)
    with p2p_blocked(lab, "h1"):
        pass
    rules = subprocess.run(["ip", "netns", "exec", lab.ns("h1"), IPT, "-S"], capture_output=True, text=True).stdout
    assert "DROP" not in rules

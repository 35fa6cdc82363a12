"""A dropped link between two of our CLIs (iptables DROP in the sender's namespace) during a
transfer of a file, a folder or stdin: a short outage is ridden out with no user action, a dead
path is noticed within seconds and healed, a long one fails cleanly with a file's partial kept
(the re-run resumes) and nothing left of a folder (docs/protocol-extensions.md §1–2).

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


@pytest.fixture(scope="module")
def payload_folder(payload_file: Path) -> Path:
    folder = payload_file.parent / "tree"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    if not (folder / "sub" / payload_file.name).exists():
        os.link(payload_file, folder / "sub" / payload_file.name)
        (folder / "note.txt").write_text("kept\n")
    return folder


REPO = Path(__file__).resolve().parents[2]


def start_server(lab) -> None:  # noqa: ANN001 - Lab
    # this checkout's server, whichever checkout the shared editable install points at
    lab.start_server(env={"PYTHONPATH": str(REPO)})


def received_bytes(out: Path) -> int:
    """Everything under `out`, hidden partials and extraction staging included."""
    total = 0
    for p in out.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            if p.is_file():
                total += p.stat().st_size
    return total


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


class Run:
    def __init__(self, lab, tmp: Path, src: Path, out: Path, args: tuple[str, ...],  # noqa: ANN001
                 *, stdin: bool = False) -> None:
        home = tmp / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"SP2P_SERVER": f"http://{PUB_IP}:8080", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "PYTHONPATH": str(REPO)}
        cli = [sys.executable, "-m", "sp2p"]
        self.lab = lab
        what = ["-name", src.name, "-"] if stdin else [str(src)]
        with open(src if stdin else os.devnull, "rb") as source:  # the child has its own descriptor
            self.send = lab.run("h1", [*cli, "send", *args, *what], env=env, name=f"send-{tmp.name}",
                                start_new_session=True, stdin=source)  # fmt: skip
        code = wait_code(lab, self.send)
        self.recv = lab.run("h2", [*cli, "receive", *args, "-output", str(out), code], env=env,
                            name=f"recv-{tmp.name}", start_new_session=True)  # fmt: skip

    def wait(self) -> tuple[int, str, int, str]:
        s, r = self.send.wait(RUN_TIMEOUT), self.recv.wait(RUN_TIMEOUT)
        return s, self.lab.output_of(self.send), r, self.lab.output_of(self.recv)


def wait_for_partial(run: Run, out: Path, share: float) -> None:
    deadline = time.monotonic() + 60
    while received_bytes(out) < SIZE * share:
        assert time.monotonic() < deadline, run.lab.output_of(run.recv)
        assert run.recv.poll() is None, run.lab.output_of(run.recv)
        time.sleep(0.005)


def check_received(kind: str, out: Path, payload_file: Path, detail: str) -> None:
    if kind == "folder":
        assert sha256_file(out / "tree" / "sub" / payload_file.name) == sha256_file(payload_file), detail
        assert (out / "tree" / "note.txt").read_text() == "kept\n", detail
    else:
        assert sha256_file(out / payload_file.name) == sha256_file(payload_file), detail
    assert not [p for p in out.iterdir() if p.name.startswith(".sp2p")], detail


def started(lab, tmp_path: Path, src: Path, kind: str, transport: str) -> tuple[Run, Path]:  # noqa: ANN001 - Lab
    """The server up and a transfer of `src` under way (a tenth of it received), into `out`."""
    start_server(lab)
    out = tmp_path / "out"
    out.mkdir()
    run = Run(lab, tmp_path / "run", src, out, ("-transport", transport), stdin=kind == "stdin")
    wait_for_partial(run, out, 0.1)
    return run, out


@pytest.mark.parametrize("kind", ["file", "folder", "stdin"])
@pytest.mark.parametrize("transport", ["tcp", "webrtc"])
def test_five_second_outage_completes_without_user_action(netlab, tmp_path, payload_file, payload_folder,
                                                          transport, kind):
    lab = netlab(same_lan=True)
    run, out = started(lab, tmp_path, payload_folder if kind == "folder" else payload_file, kind, transport)
    with p2p_blocked(lab, "h1"):
        time.sleep(5)
    s_rc, s_out, r_rc, r_out = run.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert (s_rc, r_rc) == (0, 0), detail
    assert "Traceback" not in s_out + r_out, detail
    check_received(kind, out, payload_file, detail)


@pytest.mark.parametrize(("kind", "transport"), [("stdin", "tcp"), ("folder", "webrtc")])
def test_dead_path_is_noticed_in_seconds_and_healed(netlab, tmp_path, payload_file, payload_folder,
                                                    kind, transport):
    """A path dead for up to 15 s: both sides notice within the quick limit (8 s, not the 120 s
    idle limit), reconnect once it is back, and the stream continues from the sender's window."""
    lab = netlab(same_lan=True)
    run, out = started(lab, tmp_path, payload_folder if kind == "folder" else payload_file, kind, transport)
    noticed = "silent for 8 s); reconnecting for up to 1m00s"
    with p2p_blocked(lab, "h1"):
        # dead for up to 15 s: back 2 s after a side said it noticed, so the first reconnect
        # attempt still starts on a dead path, as with the whole 15 s
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if noticed in lab.output_of(run.send) + lab.output_of(run.recv):
                time.sleep(2)
                break
            time.sleep(0.1)
        during = lab.output_of(run.send) + lab.output_of(run.recv)
    s_rc, s_out, r_rc, r_out = run.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert noticed in during, detail
    assert (s_rc, r_rc) == (0, 0), detail
    assert "Reconnected via" in s_out and "Reconnected via" in r_out, detail
    check_received(kind, out, payload_file, detail)


def test_outage_longer_than_reconnect_fails_cleanly_then_rerun_resumes(netlab, tmp_path, payload_file):
    lab = netlab(same_lan=True)
    start_server(lab)
    out = tmp_path / "out"
    out.mkdir()
    # the shipped limits: the dead path is noticed by the quick rule (§2.3), not the idle limit
    run = Run(lab, tmp_path / "first", payload_file, out, ("-transport", "tcp", "-reconnect", "5s"))
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


@pytest.mark.parametrize("kind", ["folder", "stdin"])
def test_folder_or_stream_outage_longer_than_reconnect_fails_cleanly(netlab, tmp_path, payload_file,
                                                                      payload_folder, kind):
    lab = netlab(same_lan=True)
    start_server(lab)
    out = tmp_path / "out"
    out.mkdir()
    src = payload_folder if kind == "folder" else payload_file
    run = Run(lab, tmp_path / "first", src, out, ("-transport", "tcp", "-reconnect", "5s"),
              stdin=kind == "stdin")
    wait_for_partial(run, out, 0.1)
    with p2p_blocked(lab, "h1"):
        s_rc, s_out, r_rc, r_out = run.wait()
    detail = f"\n--- sender ---\n{s_out}\n--- receiver ---\n{r_out}"
    assert s_rc == r_rc == 6, detail
    assert "Traceback" not in s_out + r_out, detail
    for output in (s_out, r_out):
        assert "reconnecting for up to 5s" in output, detail
        # the side whose budget ran out first leaves; the other may hear that before its own runs out
        assert re.search(r"sp2p: error: the connection was lost and (could not be re-established in 5s|"
                         r"the (sender|receiver) left before it could be re-established)", output), detail
    assert "a folder or a stream cannot resume: a re-run sends it again from the start" in s_out, detail
    assert "Folders and streams cannot resume: a re-run starts from zero" in r_out, detail
    assert list(out.iterdir()) == [], detail  # no partial, nothing under a final name


def test_rules_are_gone(netlab):  # the context manager removes what it inserted
    lab = netlab(same_lan=True)
    with p2p_blocked(lab, "h1"):
        pass
    rules = subprocess.run(["ip", "netns", "exec", lab.ns("h1"), IPT, "-S"], capture_output=True, text=True).stdout
    assert "DROP" not in rules

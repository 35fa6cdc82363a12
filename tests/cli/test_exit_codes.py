"""One test per exit code in sp2p/status.py (issue 16 item 8), each through the in-process CLI
runner against a real server and a real (or scripted hostile) peer process."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sp2p.proto import liveness
from sp2p.status import ExitStatus
from tests.e2e.harness import finish, read_code, spawn, spawn_scripted
from tests.support.codes import wrong_code
from tests.support.run_cli import ExitStatusError, run_cli
from tests.support.scripted_cli import first_attempt_within


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "report.txt"
    path.write_text("quarterly numbers\n" * 100)
    return path


def _sender(env: dict[str, str], *args: str, script: str | None = None,
            first_attempt: float | None = None) -> Iterator[subprocess.Popen[bytes]]:
    if script or first_attempt:
        proc = spawn_scripted(["send", *args], env, script=script, first_attempt=first_attempt)
    else:
        proc = spawn(["send", *args], env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        finish(proc)


def test_the_runner_fails_on_an_unexpected_exit() -> None:
    with pytest.raises(ExitStatusError, match="unknown flag"):
        run_cli("send", "-bogus", "x")
    assert run_cli("send", "-bogus", "x", tolerate_error=True).exit_status == ExitStatus.USAGE
    with pytest.raises(ExitStatusError, match="expected exit"):
        run_cli("version", expect=ExitStatus.USAGE)


def test_0_ok(env: dict[str, str], src: Path, outdir: Path) -> None:
    for sender in _sender(env, str(src)):
        r = run_cli("receive", "-output", str(outdir), read_code(sender), env=env)
        assert finish(sender).rc == 0
    assert r.exit_status == ExitStatus.OK and r.errors == []
    assert (outdir / "report.txt").read_bytes() == src.read_bytes()


def test_1_error_is_an_injected_internal_error(env: dict[str, str], src: Path, outdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sp2p.flow import receive

    def broken_sink(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected internal error")

    monkeypatch.setattr(receive, "make_sink", broken_sink)  # -no-resume below: this is the sink used
    for sender in _sender(env, str(src)):
        r = run_cli("receive", "-no-resume", "-output", str(outdir), read_code(sender), env=env,
                    expect=ExitStatus.ERROR)
        s = finish(sender)
    assert r.errors == ["unexpected error: injected internal error"]
    assert r.hints == ["run again with -debug for details"]
    assert s.rc == ExitStatus.TRANSFER and "receiver error: receiver failed unexpectedly" in s.err
    assert list(outdir.iterdir()) == []


def test_2_usage() -> None:
    r = run_cli("send", "-compress", "12", "x", expect=ExitStatus.USAGE)
    assert len(r.errors) == 1 and "compress" in r.errors[0]


def test_3_signaling(env: dict[str, str], outdir: Path) -> None:
    r = run_cli("receive", "-output", str(outdir), "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf", env=env,
                expect=ExitStatus.SIGNALING)
    assert len(r.errors) == 1 and r.errors[0].startswith("transfer session not found"), r.stderr


def test_4_connect(env: dict[str, str], src: Path, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No common transport: the sender offers TCP only, the receiver takes WebRTC only (so both
    give the doomed attempt 5 s, not the shipped 30)."""
    from sp2p.flow import relay

    monkeypatch.setattr(relay, "establish", first_attempt_within(5, relay.establish))
    for sender in _sender(env, "-transport", "tcp", str(src), first_attempt=5):
        r = run_cli("receive", "-transport", "webrtc", "-output", str(outdir), read_code(sender), env=env,
                    expect=ExitStatus.CONNECT)
        s = finish(sender, timeout=90)
    assert len(r.errors) == 1 and "connection" in r.errors[0], r.stderr
    assert s.rc == ExitStatus.CONNECT, s.err


def test_5_security(env: dict[str, str], src: Path, outdir: Path) -> None:
    for sender in _sender(env, str(src)):
        wrong = wrong_code(read_code(sender))
        r = run_cli("receive", "-output", str(outdir), wrong, env=env, expect=ExitStatus.SECURITY)
        assert finish(sender, timeout=60).rc == ExitStatus.SECURITY
    assert r.errors == ["key confirmation failed: wrong code, or someone tampered with the connection"]


def test_6_transfer(env: dict[str, str], src: Path, outdir: Path) -> None:
    for sender in _sender(env, str(src), script="oversend"):
        r = run_cli("receive", "-output", str(outdir), read_code(sender), env=env, expect=ExitStatus.TRANSFER)
    assert r.errors == ["the sender sent more than the announced 10 bytes"]
    assert list(outdir.iterdir()) == []


def test_7_local_io(env: dict[str, str], tmp_path: Path) -> None:
    r = run_cli("receive", "-output", str(tmp_path / "missing"), "abcdefgh-6mBhJfNj3WXtM6Zyq83xdf", env=env,
                expect=ExitStatus.LOCAL_IO)
    assert r.errors == [f"output folder {tmp_path / 'missing'} does not exist"]


def test_8_timeout_raises_transfer_timeout(env: dict[str, str], src: Path, outdir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "PROGRESS_WINDOW", 3.0)
    for sender in _sender(env, str(src), script="heartbeats-only"):
        r = run_cli("receive", "-output", str(outdir), read_code(sender), env=env, expect=ExitStatus.TIMEOUT)
    assert r.errors == ["the sender made almost no progress in 3 s (under 64 KiB)"]


def test_130_interrupted(env: dict[str, str], src: Path, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the transfer starts: exit 130 here, and the sender hears it was the user."""
    from sp2p.flow import receive

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(receive, "make_sink", ctrl_c)
    for sender in _sender(env, str(src)):
        r = run_cli("receive", "-no-resume", "-output", str(outdir), read_code(sender), env=env,
                    expect=ExitStatus.INTERRUPTED)
        s = finish(sender)
    assert r.errors == ["interrupted"]
    assert s.rc == ExitStatus.TRANSFER and "the receiver cancelled" in s.err


def test_every_exit_status_has_its_test() -> None:
    names = {name for name in globals() if name.startswith("test_")}
    for status in ExitStatus:
        assert any(name.startswith(f"test_{status.value}_") for name in names), status

"""The `curl | sh` bootstrap scripts against a real sp2p-server, with a stand-in CLI binary.

Security cases D1–D7 (security-cases.md §2.6) as far as they concern the scripts: the
binary runs only when its SHA-256 matches what the server publishes, downloads are
https-only except on loopback, a truncated script runs nothing, relay consent is never
given on the user's behalf, the code can stay out of argv, and the temporary directory is
gone on every way out. The host the scripts meet (missing tools, other architectures and
shells) is test_bootstrap_hosts.py; the real-binary round trip is test_bootstrap_e2e.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from server.bootstrap import Bootstrap
from tests.dist.helpers import (
    BOOTSTRAP_DIR,
    FAKE_CLI,
    assert_clean,
    fake_env,
    parse_fake_log,
    platform_asset,
    publish,
    run_pipe,
    script_env,
)
from tests.support.procs import wait_for_program
from tests.support.server_proc import ServerProc

SCRIPTS = ("send.sh", "receive.sh")  # both served from the one template, server/bootstrap/sp2p.sh
TEMPLATE = BOOTSTRAP_DIR / "sp2p.sh"


def test_served_scripts_carry_the_base_url(dl_server: ServerProc) -> None:
    for path, name in (("/", "send.sh"), ("/r", "receive.sh")):
        out = subprocess.run(
            ["curl", "-fsS", dl_server.http_url + path], capture_output=True, text=True, check=True
        ).stdout
        assert f"sp2p_base='{dl_server.http_url}'" in out
        assert "@@SP2P_BASE_URL@@" not in out
        assert out == Bootstrap(BOOTSTRAP_DIR).render(name, dl_server.http_url)
        assert "@@SP2P_" not in out
        assert f"sp2p_command={name.removesuffix('.sh')}\n" in out


def test_send_runs_the_verified_binary_with_the_users_arguments(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    result = run_pipe(
        dl_server.http_url, ["a file.txt", "-compress", "0"],
        tmpdir=work["tmp"], cwd=work["cwd"], env=fake_env(work),
    )
    assert result.returncode == 0, result.stderr
    log = parse_fake_log(work["log"])
    assert log["arg"] == ["send", "a file.txt", "-compress", "0"]
    assert log["SP2P_SERVER"] == [dl_server.http_url]
    assert log["SP2P_URL"] == [dl_server.http_url]
    # it ran from a private directory under the user's TMPDIR, which is gone now
    assert Path(log["argv0"][0]).parent.parent == work["tmp"]
    assert_clean(work["tmp"])


def test_receive_passes_the_code_and_never_adds_allow_relay(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    result = run_pipe(
        dl_server.http_url + "/r", ["abcdefgh-XYZ"],
        tmpdir=work["tmp"], cwd=work["cwd"], env=fake_env(work),
    )
    assert result.returncode == 0, result.stderr
    log = parse_fake_log(work["log"])
    assert log["arg"] == ["receive", "abcdefgh-XYZ"]
    assert_clean(work["tmp"])


@pytest.mark.parametrize("template", ["sp2p.sh", "sp2p.ps1"])
def test_scripts_never_grant_relay_consent(template: str) -> None:
    """D5: relay consent stays with the user (upstream's scripts passed -allow-relay)."""
    text = (BOOTSTRAP_DIR / template).read_text()
    code_lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("allow-relay" in line for line in code_lines)


def test_receive_takes_the_code_from_the_environment_not_argv(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    """D6: `curl BASE/r | SP2P_CODE=… sh` keeps the code out of every process's argv."""
    result = run_pipe(
        dl_server.http_url + "/r", [], tmpdir=work["tmp"], cwd=work["cwd"],
        env=fake_env(work, SP2P_CODE="abcdefgh-SECRET"),
    )
    assert result.returncode == 0, result.stderr
    log = parse_fake_log(work["log"])
    assert log["arg"] == ["receive"]
    assert log["SP2P_CODE"] == ["abcdefgh-SECRET"]


def test_receive_without_code_or_terminal_fails_clearly(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    result = run_pipe(
        dl_server.http_url + "/r", [], tmpdir=work["tmp"], cwd=work["cwd"], env=fake_env(work)
    )
    assert result.returncode == 1
    assert "usage: curl -f BASE_URL/r | sh -s CODE" in result.stderr
    assert not work["log"].exists()
    assert_clean(work["tmp"])


def test_exit_status_of_the_cli_is_passed_on(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    result = run_pipe(
        dl_server.http_url, ["f"], tmpdir=work["tmp"], cwd=work["cwd"],
        env=fake_env(work, FAKE_SP2P_EXIT="5"),
    )
    assert result.returncode == 5
    assert_clean(work["tmp"])


@pytest.mark.parametrize(
    "case", ["tampered", "truncated", "other-binary", "malformed-checksum", "missing"]
)
def test_a_binary_that_does_not_match_its_checksum_never_runs(
    case: str, dl_server: ServerProc, dl_dir: Path, work: dict[str, Path]
) -> None:
    """D2: mismatch, truncation, a foreign binary, a bad or absent checksum: refuse."""
    good = FAKE_CLI.encode()
    marker = work["cwd"] / "executed"
    evil = f"#!/bin/sh\ntouch {marker}\n".encode()
    if case == "tampered":
        publish(dl_dir, evil, checksum_of=good)
    elif case == "truncated":
        publish(dl_dir, good[: len(good) // 2], checksum_of=good)
    elif case == "other-binary":
        publish(dl_dir, evil, checksum_of=b"\x7fELF a binary for another platform")
    elif case == "malformed-checksum":
        asset = publish(dl_dir, evil)
        Path(f"{asset}.sha256").write_text("not-a-checksum  " + asset.name + "\n")
    else:
        for leftover in dl_dir.iterdir():
            leftover.unlink()
    for url in (dl_server.http_url, dl_server.http_url + "/r"):
        result = run_pipe(
            url, ["x"], tmpdir=work["tmp"], cwd=work["cwd"], env=fake_env(work)
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("sp2p: "), result.stderr
        expected = {
            "malformed-checksum": "malformed checksum",
            "missing": "cannot download",
        }.get(case, "checksum mismatch")
        assert expected in last
        assert not marker.exists(), "the unverified binary was executed"
        assert not work["log"].exists()
        assert_clean(work["tmp"])


@pytest.mark.parametrize("name", SCRIPTS)
def test_plain_http_is_refused_for_a_non_loopback_base(name: str, work: dict[str, Path]) -> None:
    """D1: https only; plain http only for a loopback base URL (development)."""
    script = Bootstrap(BOOTSTRAP_DIR).render(name, "http://sp2p.invalid")
    result = subprocess.run(
        ["sh", "-s", "x"], input=script, capture_output=True, text=True,
        env=script_env(work["tmp"]), cwd=work["cwd"], timeout=30,
    )
    assert result.returncode == 1
    assert "refusing to download over plain http" in result.stderr
    assert_clean(work["tmp"])


def test_downloads_pin_https_and_tls12() -> None:
    """D1: curl gets --proto/--proto-redir and --tlsv1.2, wget --https-only; never -k."""
    text = TEMPLATE.read_text()
    assert 'https://*) sp2p_proto=\'=https\'' in text
    assert 'curl -fsSL --proto "$sp2p_proto" --proto-redir "$sp2p_proto" --tlsv1.2' in text
    assert "wget -q --https-only" in text
    assert not re.search(r"curl[^\n]*\s(-k|--insecure)\b", text)
    assert "--no-check-certificate" not in text


def test_the_unrendered_template_needs_a_mode(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    """Run from a checkout (development), the template takes its mode and base from the environment."""
    result = subprocess.run(
        ["sh", str(TEMPLATE), "f"], capture_output=True, text=True, cwd=work["cwd"],
        env=script_env(work["tmp"], fake_env(work, SP2P_BASE_URL=dl_server.http_url)), timeout=30,
    )
    assert result.returncode == 1
    assert "must be served by sp2p-server (or set SP2P_MODE=send|receive)" in result.stderr
    assert not work["log"].exists()
    result = subprocess.run(
        ["sh", str(TEMPLATE), "f"], capture_output=True, text=True, cwd=work["cwd"],
        env=script_env(work["tmp"], fake_env(work, SP2P_BASE_URL=dl_server.http_url, SP2P_MODE="send")),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert parse_fake_log(work["log"])["arg"] == ["send", "f"]
    assert_clean(work["tmp"])


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_truncated_script_runs_nothing(
    name: str, dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    """D3: every prefix cut at a line boundary neither downloads nor runs anything."""
    path = "/" if name == "send.sh" else "/r"
    full = subprocess.run(
        ["curl", "-fsS", dl_server.http_url + path], capture_output=True, text=True, check=True
    ).stdout
    lines = full.splitlines(keepends=True)
    assert lines[-1].startswith("main "), "main must be called on the last line only"
    env = script_env(work["tmp"], fake_env(work))
    for cut in range(len(lines)):
        prefix = "".join(lines[:cut])
        subprocess.run(
            ["sh", "-s", "payload"], input=prefix, capture_output=True, text=True,
            cwd=work["cwd"], env=env, timeout=30,
        )
        assert not work["log"].exists(), f"the CLI ran from a script cut after line {cut}"
        assert list(work["tmp"].iterdir()) == [], f"cut after line {cut} created files"
    # and the complete script does run (the loop above proved something)
    result = subprocess.run(
        ["sh", "-s", "payload"], input=full, capture_output=True, text=True,
        cwd=work["cwd"], env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert work["log"].exists()


def _default_signals() -> None:
    """As in a terminal session: a test runner started in the background (or by nohup)
    passes SIGINT/SIGHUP down as *ignored*, and a shell cannot trap an ignored signal."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize(("signame", "status"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_temporary_directory_is_removed_on_signals(
    signame: str, status: int, dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path]
) -> None:
    env = script_env(work["tmp"], fake_env(work, FAKE_SP2P_SLEEP="30"))
    script = subprocess.run(
        ["curl", "-fsS", dl_server.http_url], capture_output=True, check=True
    ).stdout
    # `sh -s` reading the script from a pipe, as under curl, but its status is ours to see
    proc = subprocess.Popen(
        ["sh", "-s", "f"], cwd=work["cwd"], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=_default_signals,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(script)
        proc.stdin.close()
        assert proc.stdout.readline() == b"started\n"
        # "started" comes before the stand-in forks `sleep`: a SIGINT between that fork and
        # the exec runs the forked shell's handler, which only notes it, and the exec then
        # drops it, so `sleep` lived its 30 s (about 1 run in 4 under load). Signal the group
        # once `sleep` itself runs, as a user presses Ctrl-C while the CLI waits.
        wait_for_program(proc.pid, "sleep")
        assert len(list(work["tmp"].iterdir())) == 1  # the script's private directory
        os.killpg(proc.pid, getattr(signal, signame))  # as a terminal would: the whole group
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == status
    deadline = time.monotonic() + 5
    while list(work["tmp"].iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_clean(work["tmp"])


def test_asset_name_matches_the_server_layout(dl_server: ServerProc, dl_dir: Path) -> None:
    """The scripts' /dl layout is what sp2p-server serves: binary and computed .sha256."""
    asset = publish(dl_dir, FAKE_CLI.encode())
    Path(f"{asset}.sha256").unlink()  # the server computes it when absent
    out = subprocess.run(
        ["curl", "-fsS", f"{dl_server.http_url}/dl/{platform_asset()}.sha256"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert re.fullmatch(rf"[0-9a-f]{{64}}  {platform_asset()}\n", out)

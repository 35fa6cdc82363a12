"""The `curl | sh` bootstrap scripts on the hosts they meet, against a real sp2p-server.

A PATH with tools taken away or a fake `uname`: no SHA-256 tool refuses, wget stands in for
curl, an unknown architecture never reaches a download URL (D4), a Windows shell is sent to
the PowerShell script of its mode, and each served mode runs under dash and bash.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.dist.helpers import assert_clean, fake_env, parse_fake_log, run_pipe, script_env
from tests.support.server_proc import ServerProc


def _tool_dir(
    tmp_path: Path, *, drop: set[str], fake_uname_m: str | None = None, fake_uname_s: str = "Linux"
) -> str:
    """A PATH with the usual tools linked in, minus `drop` (and maybe a fake uname)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["sh", "curl", "wget", "sha256sum", "shasum", "mktemp", "rm", "mv", "chmod", "sed",
             "tr", "cut", "uname", "ls", "cat", "sleep", "touch", "sysctl"]
    for tool in tools:
        if tool in drop:
            continue
        for directory in os.environ["PATH"].split(os.pathsep):
            candidate = Path(directory) / tool
            if candidate.is_file() and os.access(candidate, os.X_OK):
                (bin_dir / tool).symlink_to(candidate)
                break
    if fake_uname_m is not None:
        (bin_dir / "uname").unlink(missing_ok=True)
        (bin_dir / "uname").write_text(
            f'#!/bin/sh\nif [ "$1" = -m ]; then echo {fake_uname_m}; else echo {fake_uname_s}; fi\n'
        )
        (bin_dir / "uname").chmod(0o755)
    return str(bin_dir)


def test_refuses_without_a_sha256_tool(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path], tmp_path: Path
) -> None:
    path = _tool_dir(tmp_path, drop={"sha256sum", "shasum"})
    result = run_pipe(
        dl_server.http_url, ["f"], tmpdir=work["tmp"], cwd=work["cwd"],
        env=fake_env(work, PATH=path),
    )
    assert result.returncode == 1
    assert "sha256sum or shasum is required" in result.stderr
    assert not work["log"].exists()
    assert_clean(work["tmp"])


def test_wget_is_used_when_curl_is_missing(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path], tmp_path: Path
) -> None:
    path = _tool_dir(tmp_path, drop={"curl"})
    script = subprocess.run(
        ["curl", "-fsS", dl_server.http_url], capture_output=True, text=True, check=True
    ).stdout
    result = subprocess.run(
        ["sh", "-s", "f"], input=script, capture_output=True, text=True, cwd=work["cwd"],
        env=script_env(work["tmp"], fake_env(work, PATH=path)), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert parse_fake_log(work["log"])["arg"] == ["send", "f"]
    assert_clean(work["tmp"])


def test_unsupported_architecture_is_refused(
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path], tmp_path: Path
) -> None:
    """D4: only {linux,darwin}×{amd64,arm64} reach a download URL."""
    path = _tool_dir(tmp_path, drop=set(), fake_uname_m="riscv64")
    result = run_pipe(
        dl_server.http_url, ["f"], tmpdir=work["tmp"], cwd=work["cwd"],
        env=fake_env(work, PATH=path),
    )
    assert result.returncode == 1
    assert "unsupported architecture: riscv64" in result.stderr
    assert_clean(work["tmp"])


@pytest.mark.parametrize("shell", ["dash", "bash"])
@pytest.mark.parametrize(("path", "mode", "arg"), [("", "send", "a file"), ("/r", "receive", "abcdefgh-XYZ")])
def test_each_served_mode_runs_under_dash_and_bash(
    shell: str, path: str, mode: str, arg: str,
    dl_server: ServerProc, fake_cli: bytes, work: dict[str, Path],
) -> None:
    """One template, two modes: each served script runs its own command in either shell."""
    script = subprocess.run(
        ["curl", "-fsS", dl_server.http_url + path], capture_output=True, text=True, check=True
    ).stdout
    result = subprocess.run(
        [shell, "-s", arg], input=script, capture_output=True, text=True, cwd=work["cwd"],
        env=script_env(work["tmp"], fake_env(work)), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert parse_fake_log(work["log"])["arg"] == [mode, arg]
    assert_clean(work["tmp"])


@pytest.mark.parametrize(("path", "hint"), [("", "/ps))) 'FILE'"), ("/r", "/ps/r))) 'CODE'")])
def test_windows_shells_are_sent_to_the_powershell_script_of_their_mode(
    path: str, hint: str, dl_server: ServerProc, work: dict[str, Path], tmp_path: Path
) -> None:
    tools = _tool_dir(tmp_path, drop=set(), fake_uname_m="x86_64", fake_uname_s="MINGW64_NT-10.0")
    result = run_pipe(
        dl_server.http_url + path, ["x"], tmpdir=work["tmp"], cwd=work["cwd"],
        env=fake_env(work, PATH=tools),
    )
    assert result.returncode == 1
    assert f"irm {dl_server.http_url}{hint}" in result.stderr
    assert_clean(work["tmp"])

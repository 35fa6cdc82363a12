"""Helpers for the distribution tests: run the bootstrap scripts, fake CLI binaries."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP_DIR = REPO_ROOT / "server" / "bootstrap"
CODE_PATTERN = r"[23456789a-hj-np-z]{8}-[0-9A-Za-z]+"


def platform_asset() -> str:
    """The /dl asset name the scripts pick on this machine, e.g. sp2p-linux-amd64."""
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    return f"sp2p-{platform.system().lower()}-{arch[platform.machine().lower()]}"


def publish(dl_dir: Path, content: bytes, *, checksum_of: bytes | None = None) -> Path:
    """Put a binary and its .sha256 into dl_dir (checksum_of: hash these bytes instead)."""
    asset = dl_dir / platform_asset()
    asset.write_bytes(content)
    asset.chmod(0o755)
    digest = hashlib.sha256(content if checksum_of is None else checksum_of).hexdigest()
    (dl_dir / f"{asset.name}.sha256").write_text(f"{digest}  {asset.name}\n")
    return asset


#: A stand-in for the CLI: records its argv and environment, answers --version.
FAKE_CLI = """#!/bin/sh
if [ "${1:-}" = --version ]; then echo "sp2p 9.9.9-fake"; exit 0; fi
log="${FAKE_SP2P_LOG:?}"
{
  echo "argv0=$0"
  for a in "$@"; do echo "arg=$a"; done
  echo "SP2P_SERVER=${SP2P_SERVER:-}"
  echo "SP2P_URL=${SP2P_URL:-}"
  echo "SP2P_CODE=${SP2P_CODE:-}"
  echo "TMPDIR=${TMPDIR:-}"
} >"$log"
if [ -n "${FAKE_SP2P_SLEEP:-}" ]; then echo started; sleep "$FAKE_SP2P_SLEEP"; fi
exit "${FAKE_SP2P_EXIT:-0}"
"""


@dataclass
class FakeRun:
    returncode: int
    stdout: str
    stderr: str
    log: dict[str, list[str]]  #: what the fake CLI recorded (empty: it never ran)


def parse_fake_log(path: Path) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    return entries


def pipe_command(url: str, args: Sequence[str], *, fetch: str = "curl -fsS") -> str:
    """The user's one-liner: `curl -f URL | sh -s ARGS...`."""
    tail = (" -s " + shlex.join(args)) if args else ""
    return f"{fetch} {shlex.quote(url)} | sh{tail}"


def script_env(tmpdir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a bootstrap run: no inherited SP2P_*, a private TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SP2P_", "FAKE_SP2P"))}
    tmpdir.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmpdir)
    env.update(extra or {})
    return env


def run_pipe(
    url: str,
    args: Sequence[str],
    *,
    tmpdir: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pipe_command(url, args),
        shell=True,
        cwd=cwd,
        env=script_env(tmpdir, env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: /dev/tty is unavailable
    )


def fake_env(work: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"FAKE_SP2P_LOG": str(work["log"]), **extra}


def assert_clean(tmpdir: Path) -> None:
    assert list(tmpdir.iterdir()) == [], f"left behind in TMPDIR: {list(tmpdir.iterdir())}"

"""`curl -f BASE | sh -s FILE` and `curl -f BASE/r | sh -s CODE` end to end.

The real PyInstaller binary, published by scripts/build_packages.sh, is served by a real
sp2p-server from its `-dl-dir`; both scripts download it, verify it, run a real transfer
and leave nothing behind in their TMPDIR.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dist.helpers import CODE_PATTERN, pipe_command, platform_asset, run_pipe, script_env
from tests.support.server_proc import ServerProc, start_server

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

#: keep the peers' direct connection on 127.0.0.1 (sp2p/cli.py's development hook)
LOOPBACK = {"SP2P_ALLOW_LOOPBACK": "1"}


@pytest.fixture(scope="module")
def release_server(release_dir: Path) -> Iterator[ServerProc]:
    with start_server("-dl-dir", str(release_dir)) as server:
        yield server


class StderrReader:
    """Collects a process's stderr in a thread so the test can wait for a pattern."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        assert proc.stderr is not None
        self._stream = proc.stderr
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for chunk in iter(lambda: self._stream.read1(4096), b""):
            with self._lock:
                self._chunks.append(chunk)

    def text(self) -> str:
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            time.sleep(0.1)
        return None


def test_release_layout_has_what_the_scripts_download(release_dir: Path) -> None:
    asset = release_dir / platform_asset()
    digest = hashlib.sha256(asset.read_bytes()).hexdigest()
    assert (release_dir / f"{asset.name}.sha256").read_text() == f"{digest}  {asset.name}\n"


def test_send_and_receive_through_the_bootstrap_scripts(
    release_server: ServerProc, tmp_path: Path
) -> None:
    send_dir, recv_dir = tmp_path / "send", tmp_path / "recv"
    send_tmp, recv_tmp = tmp_path / "send-tmp", tmp_path / "recv-tmp"
    for d in (send_dir, recv_dir, send_tmp, recv_tmp):
        d.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (send_dir / "payload.bin").write_bytes(payload)

    sender = subprocess.Popen(
        pipe_command(release_server.http_url, ["payload.bin"]), shell=True, cwd=send_dir,
        env=script_env(send_tmp, LOOPBACK), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        err = StderrReader(sender)
        match = err.wait_for(CODE_PATTERN, timeout=90)
        assert match, f"sender printed no transfer code:\n{err.text()[-3000:]}"
        code = match.group(0)
        # the sender advertises the bootstrap one-liner for this server, code kept out of argv (D6)
        assert f"curl -fsSL {release_server.http_url}/r | SP2P_CODE={code} sh" in err.text()

        receiver = run_pipe(
            release_server.http_url + "/r", [code], tmpdir=recv_tmp, cwd=recv_dir,
            env=LOOPBACK, timeout=180,
        )
        assert receiver.returncode == 0, receiver.stderr[-3000:]
        assert sender.wait(timeout=60) == 0, err.text()[-3000:]
    finally:
        if sender.poll() is None:
            os.killpg(sender.pid, 9)
            sender.wait()

    received = recv_dir / "payload.bin"
    assert received.is_file(), sorted(p.name for p in recv_dir.iterdir())
    assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert [p.name for p in recv_dir.iterdir()] == ["payload.bin"]
    # the scripts' private directories, and what the one-file binary unpacked, are gone
    assert list(send_tmp.iterdir()) == []
    assert list(recv_tmp.iterdir()) == []


def test_tampered_real_binary_is_refused(
    frozen_binary: Path, tmp_path: Path
) -> None:
    dl_dir = tmp_path / "dl"
    dl_dir.mkdir()
    asset = dl_dir / platform_asset()
    shutil.copyfile(frozen_binary, asset)
    digest = hashlib.sha256(asset.read_bytes()).hexdigest()
    (dl_dir / f"{asset.name}.sha256").write_text(f"{digest}  {asset.name}\n")
    with asset.open("r+b") as handle:  # flip one byte in the appended Python archive
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd"
    cwd.mkdir()
    with start_server("-dl-dir", str(dl_dir)) as server:
        result = run_pipe(server.http_url + "/r", ["abcdefgh-XYZ"], tmpdir=tmp, cwd=cwd)
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr
    assert "sp2p 0." not in result.stderr  # the binary's banner: it never ran
    assert list(tmp.iterdir()) == []
    assert list(cwd.iterdir()) == []

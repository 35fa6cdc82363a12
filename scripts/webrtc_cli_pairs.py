"""Real CLI pairs over WebRTC for scripts/bench_webrtc.py: ours and the Go original's.

One run = `send -transport webrtc -compress 0 FILE` | `receive -transport webrtc` through a
real sp2p-server on loopback, each CLI either ours (`python3 -m sp2p`) or the Go reference
binary (../shared/reference/sp2p). The transfer is timed from the first 256 KiB in the receiver's
output folder to the receiver's exit, so process start, signalling and ICE do not count;
CPU is both processes' user + system time over that same span (read from /proc when the
first byte lands, from wait4() at exit). The received file is compared by SHA-256.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.benchkit.inputs import sha256_file as sha256_file

REPO = Path(__file__).resolve().parents[1]
GO_CLI = REPO.parent / "shared" / "reference" / "sp2p"
_TICK = os.sysconf("SC_CLK_TCK")
#: the clock starts once this much landed (our receiver first writes a small partial record)
START_BYTES = 256 * 1024

#: pair name -> (sender, receiver); "base" is our CLI from another checkout (--base)
PAIRS: dict[str, tuple[str, str]] = {
    "ours": ("ours", "ours"),
    "go": ("go", "go"),
    "go2ours": ("go", "ours"),
    "ours2go": ("ours", "go"),
    "base": ("base", "base"),
    "go2base": ("go", "base"),
    "base2go": ("base", "go"),
}
_NAMES = {"ours": "ours", "go": "Go", "base": "base"}
LABELS = {pair: f"{_NAMES[s]} -> {_NAMES[r]}" for pair, (s, r) in PAIRS.items()}


@dataclass
class PairRun:
    mbps: float
    cpu_sender: float
    cpu_receiver: float


def _command(impl: str) -> list[str]:
    return [str(GO_CLI)] if impl == "go" else [sys.executable, "-m", "sp2p"]


def _env(impl: str, env: dict[str, str], base: Path | None) -> dict[str, str]:
    if impl != "base":
        return env
    if base is None:
        raise SystemExit("the base pairs need --base DIR (a checkout of sp2p to compare with)")
    return {**env, "PYTHONPATH": str(base)}


def _cwd(impl: str, base: Path | None) -> Path:
    """`python -m` puts the working folder first on sys.path: run each CLI from its checkout."""
    return base if impl == "base" and base is not None else REPO


def _proc_cpu(pid: int) -> float:
    """user + system seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _read_code(log: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """Both CLIs print the code (ours on stdout, Go on stderr; both go to `log`)."""
    from sp2p.proto.codes import CODE_PATTERN

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = CODE_PATTERN.search(log.read_bytes().decode(errors="replace"))
        if match:
            return match.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(f"no transfer code from the sender: {log.read_bytes()[-500:]!r}")


def _folder_bytes(folder: Path) -> int:
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def _wait4(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def run_pair(pair: str, src: Path, digest: str, env: dict[str, str], work: Path,
             base: Path | None = None) -> PairRun:
    """One transfer of `src` over WebRTC between the pair's CLIs."""
    send_impl, recv_impl = PAIRS[pair]
    out = Path(tempfile.mkdtemp(dir=work))
    slog, rlog = work / "sender.log", work / "receiver.log"
    webrtc = ["-transport", "webrtc"]
    with slog.open("wb") as so:
        sender = subprocess.Popen(
            [*_command(send_impl), "send", *webrtc, "-compress", "0", str(src)],
            env=_env(send_impl, env, base), cwd=_cwd(send_impl, base), stdin=subprocess.DEVNULL,
            stdout=so, stderr=so, start_new_session=True,
        )
    receiver: subprocess.Popen[bytes] | None = None
    try:
        code = _read_code(slog, sender)
        start: list[float] = []

        def watch() -> None:  # first byte on disk: the clock and the CPU baseline start
            assert receiver is not None
            while receiver.poll() is None and not start:
                landed = _folder_bytes(out)
                if landed >= START_BYTES:
                    start.extend((time.monotonic(), _proc_cpu(sender.pid), _proc_cpu(receiver.pid), landed))
                    return
                time.sleep(0.005)

        with rlog.open("wb") as ro:
            receiver = subprocess.Popen(
                [*_command(recv_impl), "receive", *webrtc, "-output", str(out), code],
                env=_env(recv_impl, env, base), cwd=_cwd(recv_impl, base), stdin=subprocess.DEVNULL,
                stdout=ro, stderr=ro, start_new_session=True,
            )
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rc_r, cpu_r = _wait4(receiver)
        end = time.monotonic()
        watcher.join()
        rc_s, cpu_s = _wait4(sender)
        if rc_r or rc_s or not start:
            raise SystemExit(
                f"{pair}: transfer failed (sender {rc_s}, receiver {rc_r}):\n"
                f"{slog.read_bytes()[-400:]!r}\n{rlog.read_bytes()[-400:]!r}"
            )
        received = out / src.name
        if sha256_file(received) != digest:
            raise SystemExit(f"{pair}: received file differs from the source")
        size = src.stat().st_size
        return PairRun((size - start[3]) / (end - start[0]) / 1e6, cpu_s - start[1], cpu_r - start[2])
    finally:
        for proc in (sender, receiver):
            if proc is not None and proc.returncode is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        shutil.rmtree(out, ignore_errors=True)

"""Setup cost: receive a 1-byte file on loopback, ours vs the original Go CLI, in the same run.

For each round (interleaved, so load drifts hit both alike) a sender is started and left
waiting; then the receiver is timed from its start to its exit. Figures are medians over
--rounds: the receiver's wall time, the CPU time (user + system) of each process, and for
our sender the time from key confirmation to its first frame after it (Metadata), read from
its debug log. sp2p/ is byte-compiled first, as an installed package is.

    flock /tmp/bench.lock python3 scripts/bench_start.py [--rounds 10] [--go PATH] [--only ours]
                                                         [--python PATH]

--python runs our CLI under another interpreter, e.g. a clean venv: this sandbox's site-packages
holds .pth files (an editable install's finder, a CA-bundle hook importing certifi) that cost
every `python3` here ~35-50 ms a pip-installed sp2p does not pay. Make one with
`python3 -m venv --without-pip V` and symlink cryptography, cffi/_cffi_backend, zstandard (and
what else the path needs) from this site-packages into V's; sp2p itself comes from PYTHONPATH.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.harness import CODE_RE, cli_env  # noqa: E402
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server  # noqa: E402

GO_CLI = REPO.parent / "shared" / "reference" / "sp2p"  # ../shared beside the checkout
#: our sender, with timestamped lines at key confirmation and when Metadata is built
_TRACED_SENDER = (
    "import logging, sys, time\n"
    "h = logging.StreamHandler(); h.setFormatter(logging.Formatter('@%(created).6f %(message)s'))\n"
    "lg = logging.getLogger('sp2p.net.race'); lg.setLevel(logging.DEBUG); lg.addHandler(h)\n"
    "from sp2p.proto.transfer import SenderMachine\n"
    "def first_frame(f):\n"
    "    def wrapped(self, *a):\n"
    "        lg.debug('IDLE -> SENDING')  # Metadata, the first frame, is built now\n"
    "        return f(self, *a)\n"
    "    return wrapped\n"
    "SenderMachine.start = first_frame(SenderMachine.start)\n"
    "SenderMachine.start_resumable = first_frame(SenderMachine.start_resumable)\n"
    "from sp2p.cli import main\n"
    "sys.exit(main())\n"
)
_STAMP = re.compile(r"@(\d+\.\d+) (.*)")


@dataclass
class Run:
    wall: float
    recv_cpu: float
    send_cpu: float
    gap: float | None  # key confirmed -> first frame, our sender only


class _Lines:
    """Collects a pipe's lines on a thread; `wait_code` finds the transfer code in them."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: object) -> None:
        for raw in iter(pipe.readline, b""):  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(raw.decode(errors="replace"))
                self._cond.notify_all()

    def wait_code(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := CODE_RE.search(line):
                        return m.group(0)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit("no transfer code from the sender:\n" + "".join(self.lines)[-2000:])
                self._cond.wait(left)


def _cpu(ru: object) -> float:
    return float(ru.ru_utime + ru.ru_stime)  # type: ignore[attr-defined]


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """(exit status, CPU seconds) of one child, from wait4."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, _cpu(ru)
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"process {proc.args!r} did not finish")
        time.sleep(0.002)


def _gap(lines: list[str]) -> float | None:
    confirmed = first = None
    for line in lines:
        m = _STAMP.search(line)
        if not m:
            continue
        if confirmed is None and m.group(2).startswith("confirmed"):
            confirmed = float(m.group(1))
        elif first is None and "IDLE -> SENDING" in m.group(2):
            first = float(m.group(1))
    return first - confirmed if confirmed is not None and first is not None else None


def one(go: bool, src: Path, out: Path, env: dict[str, str], server: str, go_cli: Path, python: str) -> Run:
    if go:
        send_cmd = [str(go_cli), "send", "-server", server, str(src)]
        recv_cmd = [str(go_cli), "receive", "-server", server, "-output", str(out)]
    else:
        send_cmd = [python, "-c", _TRACED_SENDER, "send", str(src)]
        recv_cmd = [python, "-m", "sp2p", "receive", "-output", str(out)]
    sender = subprocess.Popen(send_cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    out_lines, err_lines = _Lines(sender.stdout), _Lines(sender.stderr)
    try:
        code = (err_lines if go else out_lines).wait_code()
        time.sleep(0.3)  # the sender is waiting, as a person would have it
        start = time.perf_counter()
        receiver = subprocess.Popen([*recv_cmd, code], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rerr = _Lines(receiver.stderr)
        rc, recv_cpu = _wait(receiver, 60)
        wall = time.perf_counter() - start
        src_rc, send_cpu = _wait(sender, 60)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    if rc or src_rc:
        raise SystemExit(f"{'go' if go else 'ours'} failed ({rc}/{src_rc}):\n{''.join(rerr.lines)[-1500:]}"
                         f"\n{''.join(err_lines.lines)[-1500:]}")
    got = out / src.name
    if got.read_bytes() != src.read_bytes():
        raise SystemExit("received file differs")
    got.unlink()
    return Run(wall, recv_cpu, send_cpu, None if go else _gap(err_lines.lines))


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f}" if values else "      -"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--go", type=Path, default=GO_CLI, help="the original Go CLI")
    ap.add_argument("--only", choices=("ours", "go"), help="measure one side only")
    ap.add_argument("--python", default=sys.executable, help="the interpreter for our CLI")
    args = ap.parse_args()
    sides = [s for s in ("ours", "go") if args.only in (None, s)]
    # as installed: pip byte-compiles (this environment may set PYTHONDONTWRITEBYTECODE)
    compileall.compile_dir(str(REPO / "sp2p"), quiet=1)
    server = start_server(*NO_LIMIT_FLAGS, timeout=60)
    runs: dict[str, list[Run]] = {s: [] for s in sides}
    try:
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            (tmp / "home" / ".config").mkdir(parents=True)
            env = cli_env(server.http_url, tmp / "home")
            src = tmp / "one.bin"
            src.write_bytes(b"x")
            out = tmp / "out"
            out.mkdir()
            for _ in range(args.rounds):
                for side in sides:
                    runs[side].append(one(side == "go", src, out, env, server.http_url, args.go, args.python))
    finally:
        server.stop()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"1-byte receive on loopback, medians of {args.rounds} (ms); ours under {args.python}")
    print(f"{'':6s} {'wall':>7s} {'recv cpu':>9s} {'send cpu':>9s} {'confirm->1st frame':>19s}")
    for side, rs in runs.items():
        gaps = [r.gap for r in rs if r.gap is not None]
        print(f"{side:6s} {_ms([r.wall for r in rs])} {_ms([r.recv_cpu for r in rs]):>9s} "
              f"{_ms([r.send_cpu for r in rs]):>9s} {_ms(gaps):>19s}")
    if len(sides) == 2:
        ours, go = (statistics.median(r.wall for r in runs[side]) for side in ("ours", "go"))
        ratio = ours / go
        print(f"ours / go wall: {ratio:.2f}")


if __name__ == "__main__":
    main()

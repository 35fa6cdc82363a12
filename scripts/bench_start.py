"""Setup cost: receive a 1-byte file on loopback, ours vs the original Go CLI, in the same run.

For each round (interleaved, so load drifts hit every row alike) a sender is started and left
waiting; then the receiver is timed from its start to its exit. Figures are medians over
--rounds: the receiver's wall time, the CPU time (user + system) of each process, and for
our sender the time from key confirmation to its first frame after it (Metadata), read from
its debug log.

    flock /tmp/bench.lock python3 scripts/bench_start.py [--rounds 10] [--go PATH] [--only ours,venv,go]
                                                         [--python PATH] [--venv DIR] [--base DIR]

Rows:
  ours   this checkout under this interpreter (`python -m sp2p`, PYTHONPATH; sp2p/ is
         byte-compiled first, as an installed package is). In this sandbox every `python3`
         pays ~30 ms for its site-packages' .pth start-up hooks (a CA-bundle hook importing
         certifi, an editable install's finder) that a user's install does not have.
  venv   what the README's install gives a user: a venv made as the README makes it
         (`python -m venv DIR && DIR/bin/pip install .`; created once in --venv, sp2p
         reinstalled from a copy of this checkout at every run), run as `DIR/bin/sp2p`
         without PYTHONPATH, both sides.
  go     the original Go CLI from ../shared/reference.
  base   with --base DIR: another checkout (e.g. `git worktree add DIR <commit>`) as the ours
         row runs it, in the same rounds: before/after under the same load.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
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
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sp2p-bench" / "venv"
ROWS = ("ours", "venv", "go", "base")
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
    "import sp2p.cli\n"
    "sys.exit(getattr(sp2p.cli, 'run', sp2p.cli.main)())  # run: the command's exit (older trees: main)\n"
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
    """(exit status, CPU seconds) of one child, from a blocking wait4 (no polling delay)."""
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode < 0:
        raise SystemExit(f"process {proc.args!r} did not finish")
    return proc.returncode, _cpu(ru)


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


@dataclass
class Side:
    """How one row starts its sender and receiver."""

    name: str
    send_cmd: list[str]  # + the file
    recv_cmd: list[str]  # + the code
    env: dict[str, str]
    #: where both start: `python -c` and `-m` put the working directory first on sys.path
    cwd: Path
    code_on_stderr: bool = False
    traced: bool = True  # our sender with the key confirmation -> first frame stamps


def sides(names: list[str], out: Path, env: dict[str, str], server: str, go_cli: Path,
          python: str, venv: Path, base: Path | None) -> list[Side]:
    elsewhere = out.parent  # holds no sp2p/
    made = []
    for name in names:
        if name == "go":
            made.append(Side(name, [str(go_cli), "send", "-server", server],
                             [str(go_cli), "receive", "-server", server, "-output", str(out)], env,
                             elsewhere, code_on_stderr=True, traced=False))
        elif name == "base":
            assert base is not None
            made.append(Side(name, [python, "-c", _TRACED_SENDER, "send"],
                             [python, "-m", "sp2p", "receive", "-output", str(out)],
                             {**env, "PYTHONPATH": str(base)}, base))
        elif name == "venv":
            venv_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # the installed copy
            made.append(Side(name, [str(venv / "bin" / "python3"), "-c", _TRACED_SENDER, "send"],
                             [str(venv / "bin" / "sp2p"), "receive", "-output", str(out)], venv_env,
                             elsewhere))
        else:
            made.append(Side(name, [python, "-c", _TRACED_SENDER, "send"],
                             [python, "-m", "sp2p", "receive", "-output", str(out)], env, REPO))
    return made


def one(side: Side, src: Path, out: Path) -> Run:
    send_cmd, recv_cmd, env = [*side.send_cmd, str(src)], side.recv_cmd, side.env
    sender = subprocess.Popen(send_cmd, env=env, cwd=side.cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_lines, err_lines = _Lines(sender.stdout), _Lines(sender.stderr)
    try:
        code = (err_lines if side.code_on_stderr else out_lines).wait_code()
        time.sleep(0.3)  # the sender is waiting, as a person would have it
        start = time.perf_counter()
        receiver = subprocess.Popen([*recv_cmd, code], env=env, cwd=side.cwd, stdin=subprocess.DEVNULL,
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
        raise SystemExit(f"{side.name} failed ({rc}/{src_rc}):\n{''.join(rerr.lines)[-1500:]}"
                         f"\n{''.join(err_lines.lines)[-1500:]}")
    got = out / src.name
    if got.read_bytes() != src.read_bytes():
        raise SystemExit("received file differs")
    got.unlink()
    return Run(wall, recv_cpu, send_cpu, _gap(err_lines.lines) if side.traced else None)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f}" if values else "      -"


def ensure_venv(venv: Path) -> None:
    """A venv as the README makes one (its dependencies from the package index, once), with
    sp2p installed from a copy of this checkout now (keeps build/ and *.egg-info out of it)."""
    fresh = not (venv / "bin" / "python3").exists()
    if fresh:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "node_modules"))
        again = [] if fresh else ["--no-deps", "--force-reinstall"]
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *again, str(copy)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--go", type=Path, default=GO_CLI, help="the original Go CLI")
    ap.add_argument("--only", default="ours,venv,go", help=f"rows to measure, of {','.join(ROWS)}")
    ap.add_argument("--python", default=sys.executable, help="the interpreter for the 'ours' row")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="where the 'venv' row's venv lives")
    ap.add_argument("--base", type=Path, help="another checkout measured as the 'base' row")
    args = ap.parse_args()
    names = [n for n in ROWS if n in args.only.split(",") or (n == "base" and args.base)]
    # as installed: pip byte-compiles (this environment may set PYTHONDONTWRITEBYTECODE)
    for tree in [REPO, *([args.base.resolve()] if args.base else [])]:
        compileall.compile_dir(str(tree / "sp2p"), quiet=1)
    if "venv" in names:
        ensure_venv(args.venv)
    server = start_server(*NO_LIMIT_FLAGS, timeout=60)
    runs: dict[str, list[Run]] = {n: [] for n in names}
    try:
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            (tmp / "home" / ".config").mkdir(parents=True)
            env = cli_env(server.http_url, tmp / "home")
            src = tmp / "one.bin"
            src.write_bytes(b"x")
            out = tmp / "out"
            out.mkdir()
            rows = sides(names, out, env, server.http_url, args.go, args.python, args.venv,
                         args.base.resolve() if args.base else None)
            for _ in range(args.rounds):
                for side in rows:
                    runs[side.name].append(one(side, src, out))
    finally:
        server.stop()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"1-byte receive on loopback, medians of {args.rounds} (ms)")
    print(f"  ours: {args.python} -m sp2p, this checkout (this sandbox's .pth start-up hooks included)")
    if "venv" in names:
        print(f"  venv: {args.venv}/bin/sp2p, installed as the README says (what a user runs)")
    if args.base:
        print(f"  base: {args.python} -m sp2p, the checkout {args.base}")
    print(f"{'':6s} {'wall':>7s} {'recv cpu':>9s} {'send cpu':>9s} {'confirm->1st frame':>19s}")
    for name, rs in runs.items():
        gaps = [r.gap for r in rs if r.gap is not None]
        print(f"{name:6s} {_ms([r.wall for r in rs])} {_ms([r.recv_cpu for r in rs]):>9s} "
              f"{_ms([r.send_cpu for r in rs]):>9s} {_ms(gaps):>19s}")
    if "go" in names:
        go = statistics.median(r.wall for r in runs["go"])
        for name in names:
            if name != "go":
                print(f"{name} / go wall: {statistics.median(r.wall for r in runs[name]) / go:.2f}")
    if "base" in names and "ours" in names:
        ours, base = (statistics.median(r.wall for r in runs[n]) for n in ("ours", "base"))
        print(f"ours / base wall: {ours / base:.2f}")


if __name__ == "__main__":
    main()

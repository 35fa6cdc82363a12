"""Servers for scripts/bench_server.py to measure, and their process-tree metrics.

A target is a comma-separated spec:

    ours                          our sp2p-server, in-memory store, as configured by default
    ours,workers=4,redis          ... with `-workers 4 -redis redis://...` (a redis-server we start)
    ours,workers=2,redis,nodes=2  two such servers on one Redis (exchanges pair across them)
    ours,tree=/path/to/checkout   our server from another checkout (a baseline, same run)
    ours,workers=4,redis,handoff=off   ... with -handoff=false (pairs stay split over workers)
    go                            the original Go server (../shared/reference/sp2p-server)
    url=http://h:p;http://h:q     servers already running; add pid=1234;5678 for metrics

Every server we start listens on loopback with its limits lifted to the level measured and
is stopped (its whole process group) when the level is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.server_proc import ServerProc, clean_env, start_server  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def go_server_path() -> Path:
    """The original Go server: $SP2P_GO_SERVER, else shared/ beside the checkout (or its parent)."""
    if env := os.environ.get("SP2P_GO_SERVER"):
        return Path(env)
    for base in (REPO.parent, REPO.parent.parent):
        candidate = base / "shared" / "reference" / "sp2p-server"
        if candidate.exists():
            return candidate
    return REPO.parent / "shared" / "reference" / "sp2p-server"


@dataclass(frozen=True)
class TargetSpec:
    label: str
    kind: str  #: "ours", "go" or "url"
    workers: int | None = None
    redis: bool = False
    nodes: int = 1
    #: another checkout to run our server from (None: this one)
    tree: Path | None = None
    #: False: -handoff=false (receivers are not moved to their sender's worker)
    handoff: bool = True
    urls: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()


def parse_target(spec: str) -> TargetSpec:
    """Parse a target spec (module docstring); raises ValueError with a one-line reason."""
    kind, *options = spec.split(",")
    values: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        values[key.strip()] = value.strip()
    if kind.startswith("url="):
        urls = tuple(u.rstrip("/") for u in kind.removeprefix("url=").split(";") if u)
        pids = tuple(int(p) for p in values.pop("pid", "").split(";") if p)
        if values:
            raise ValueError(f"unknown option(s) for url=: {', '.join(values)}")
        return TargetSpec(spec, "url", urls=urls, pids=pids)
    if kind == "go":
        if values:
            raise ValueError(f"the Go server takes no options: {', '.join(values)}")
        return TargetSpec(spec, "go")
    if kind != "ours":
        raise ValueError(f"unknown target {kind!r} (ours, go or url=...)")
    unknown = set(values) - {"workers", "redis", "nodes", "tree", "handoff"}
    if unknown:
        raise ValueError(f"unknown option(s) for ours: {', '.join(sorted(unknown))}")
    workers = int(values["workers"]) if "workers" in values else None
    nodes = int(values.get("nodes", "1"))
    if nodes > 1 and "redis" not in values:
        raise ValueError("several nodes share sessions only through Redis: add ,redis")
    tree = Path(values["tree"]).resolve() if "tree" in values else None
    if tree is not None and not (tree / "server" / "__main__.py").is_file():
        raise ValueError(f"tree={tree}: not a checkout of this project (no server/__main__.py)")
    handoff = values.get("handoff", "on") != "off"
    return TargetSpec(spec, "ours", workers=workers, redis="redis" in values, nodes=nodes, tree=tree,
                      handoff=handoff)


# ---------------------------------------------------------------------------------------
# process-tree metrics


@dataclass(frozen=True)
class Metrics:
    rss_kib: int
    threads: int
    cpu_s: float
    pids: frozenset[int]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(roots: tuple[int, ...]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [r for r in roots if _stat(r) is not None]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def measure(roots: tuple[int, ...]) -> Metrics:
    """RSS, threads and CPU seconds summed over every process under `roots` (workers too).

    CPU includes children that already exited (cutime/cstime of their parent), so a worker
    killed and replaced still counts. RSS of forked workers counts shared pages once per
    process, as `ps` would."""
    rss = threads = ticks = 0
    pids = process_tree(roots)
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        threads += int(fields[17])
        rss += int(fields[21]) * _PAGE_KIB
    return Metrics(rss, threads, ticks / _CLK_TCK, frozenset(pids))


# ---------------------------------------------------------------------------------------
# starting servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(http_url: str, timeout: float = 5.0) -> bool:
    url = http_url + "/health"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return bool(response.status == 200)
    return False


def _wait(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


#: lines of our server's log worth counting, by the name printed
LOG_EVENTS = {"worker timeouts": "WORKER TIMEOUT", "sessions ended as node gone": "node gone"}


@dataclass
class Running:
    """Started (or given) servers of one target; `stop()` ends what we started."""

    http_urls: list[str]
    roots: tuple[int, ...]
    redis_pid: int | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[ServerProc] = field(default_factory=list)
    tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def ws_urls(self) -> list[str]:
        return ["ws" + u.removeprefix("http") + "/ws" for u in self.http_urls]

    def log_events(self) -> Counter[str]:
        """How often our servers logged a worker restart or a node declared gone (the failures a
        mass close or a starved worker can cause), summed over nodes."""
        found: Counter[str] = Counter()
        for server in self.servers:
            text = server.stderr_text()
            for name, needle in LOG_EVENTS.items():
                found[name] += text.count(needle)
        return +found

    def alive(self) -> bool:
        return all(_stat(pid) is not None for pid in self.roots)

    def stop(self) -> None:
        for server in self.servers:  # all told first: each takes seconds to drain
            if server.proc.poll() is None:
                server.proc.terminate()
        for server in self.servers:
            server.stop(timeout=30)
        for proc in reversed(self.procs):
            _stop(proc)
        if self.tmp is not None:
            self.tmp.cleanup()


def _ours_flags(capacity: int) -> list[str]:
    cap = str(capacity)
    return [
        *("-max-sessions", cap, "-max-sessions-per-ip", cap),
        *("-max-conns", str(2 * capacity), "-max-conns-per-ip", str(2 * capacity)),
        *("-rate-limit", "0", "-miss-limit", "0", "-turn-per-ip-hour", "0"),
    ]


def start_target(spec: TargetSpec, capacity: int, extra: list[str]) -> Running:
    """Start the servers of `spec`, sized for `capacity` sessions; `extra` goes to ours."""
    if spec.kind == "url":
        return Running(list(spec.urls), spec.pids)
    running = Running([], ())
    running.tmp = tempfile.TemporaryDirectory(prefix="sp2p-bench-")
    try:
        if spec.kind == "go":
            port = free_port()
            proc = subprocess.Popen(
                [str(go_server_path()), "-addr", f"127.0.0.1:{port}", "-config-dir", running.tmp.name,
                 "-max-sessions", str(capacity), "-max-sessions-per-ip", str(capacity)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=clean_env(), cwd=running.tmp.name,
            )  # fmt: skip
            running.procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            _wait(lambda: healthy(url, 1.0), "the Go server", proc)
            running.http_urls, running.roots = [url], (proc.pid,)
            return running
        flags = _ours_flags(capacity)
        if spec.workers is not None:
            flags += ["-workers", str(spec.workers)]
        if not spec.handoff:
            flags += ["-handoff=false"]
        if spec.redis:
            port = free_port()
            redis = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", running.tmp.name],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            running.procs.append(redis)
            _wait(lambda: _redis_ping(port), "redis-server", redis)
            running.redis_pid = redis.pid
            flags += ["-redis", f"redis://127.0.0.1:{port}/0"]
        tree = spec.tree
        env = {"PYTHONPATH": str(tree), "SP2P_STATIC_DIR": str(tree / "static")} if tree else None
        with ThreadPoolExecutor(spec.nodes) as pool:  # nodes start in parallel: each takes seconds
            starts = [
                pool.submit(start_server, *flags, *extra, env=env, timeout=60, cwd=tree)
                for _ in range(spec.nodes)
            ]
            failures: list[RuntimeError] = []
            for start in starts:
                try:
                    running.servers.append(start.result())  # so that stop() ends every one started
                except RuntimeError as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]
        running.http_urls = [server.http_url for server in running.servers]
        running.roots = tuple(server.proc.pid for server in running.servers)
        for url in running.http_urls:
            deadline = time.monotonic() + 30
            while not healthy(url, 1.0) and time.monotonic() < deadline:
                time.sleep(0.1)
        return running
    except BaseException:
        running.stop()
        raise


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End a load-generator process we started (it is its own process-group leader)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

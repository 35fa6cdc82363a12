"""Network-namespace primitives: `ip` calls, threads that live inside a namespace, cleanup.

Nothing here touches the host's own network configuration: every `ip` call names a
namespace (`ip -n NS ...` / `ip netns exec NS ...`), iptables only ever runs inside one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

#: every namespace this harness creates starts with this, followed by the creating pid
BASE_PREFIX = "snl"
_STALE_RE = re.compile(rf"^{BASE_PREFIX}(\d+)x\d+-")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """An `ip`/`iptables`/sysctl command inside the lab failed."""


def sh(argv: Sequence[str], *, input: str | None = None, timeout: float = 30.0) -> str:
    """Run a command, return its stdout; raise NetnsError with its stderr on failure."""
    proc = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} -> rc {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def ns_sh(ns: str, argv: Sequence[str], **kw: Any) -> str:
    """`sh` inside namespace `ns`."""
    return sh(["ip", "netns", "exec", ns, *argv], **kw)


def list_netns() -> list[str]:
    out = sh(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    try:
        out = sh(["ip", "netns", "pids", ns], timeout=10)
    except NetnsError:
        return []
    return [int(p) for p in out.split()]


def kill_netns_processes(namespaces: Sequence[str], grace: float = 2.0) -> None:
    """SIGTERM every process inside `namespaces`, SIGKILL what is left after `grace` s.

    Deleting a namespace does not stop its processes (they keep an orphaned copy alive),
    so this always runs before `ip netns del`.
    """
    pids = {pid for ns in namespaces for pid in netns_pids(ns)}
    pids.discard(os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if _alive(pid)}
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def delete_netns(namespaces: Sequence[str]) -> None:
    for ns in namespaces:
        with contextlib.suppress(NetnsError):
            sh(["ip", "netns", "del", ns])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cleanup_stale() -> list[str]:
    """Remove namespaces left by crashed harness runs (their creating pid is gone).

    Namespaces of runs still alive (another developer's pytest, a running bench) are kept.
    Returns the names removed.
    """
    stale = []
    for ns in list_netns():
        m = _STALE_RE.match(ns)
        if m and not _alive(int(m.group(1))):
            stale.append(ns)
    if stale:
        kill_netns_processes(stale, grace=1.0)
        delete_netns(stale)
    return stale


def setns_current_thread(ns: str) -> None:
    """Move the calling thread into network namespace `ns` (os.setns arrived in 3.12)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NsWorker:
    """A thread living inside one namespace that runs submitted callables in order.

    Sockets created by those callables belong to that namespace, and threads started by them
    inherit it, so e.g. a renewal thread of an object built here stays in the namespace too.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"ns-{ns}", daemon=True
        )
        self._thread.start()
        ready.result(timeout=10)

    def _main(self, ready: Future[None]) -> None:
        try:
            setns_current_thread(self.ns)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def submit(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Future[T]:
        fut: Future[T] = Future()
        self._jobs.put((lambda: fn(*args, **kw), fut))
        return fut

    def call(
        self, fn: Callable[..., T], *args: Any, call_timeout: float | None = 60.0, **kw: Any
    ) -> T:
        """Run `fn(*args, **kw)` here and wait (`call_timeout` is ours, never passed to fn)."""
        return self.submit(fn, *args, **kw).result(timeout=call_timeout)

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


def in_netns(ns: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run `fn` once in a fresh thread inside `ns` and return its result (or raise)."""
    worker = NsWorker(ns)
    try:
        return worker.call(fn, *args, call_timeout=None, **kw)
    finally:
        worker.stop()

"""Process side of a `Lab`: start commands and Python callables inside its namespaces.

Mixed into `Lab`; relies on `self.ns(host)`, `self.workdir`, `self._procs`, `self._workers`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from tests.netlab.netns import NetnsError, NsWorker, setns_current_thread

T = TypeVar("T")


class LabProcesses:
    workdir: Path
    _procs: list[tuple[subprocess.Popen[bytes], Path | None, str]]
    _workers: dict[str, NsWorker]

    def ns(self, host: str) -> str:
        raise NotImplementedError

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        **popen_kw: Any,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside `host`'s namespace; it is stopped by `close()`.

        `env` is added to the inherited environment. stdout+stderr go to a log file in the
        lab's workdir (read it with `output_of`) unless `popen_kw` redirects them.
        """
        full_env = {**os.environ, **env} if env is not None else None
        log: Path | None = None
        label = name or Path(argv[0]).name
        if "stdout" not in popen_kw and "stderr" not in popen_kw:
            log = self.workdir / f"{host}-{label}-{len(self._procs)}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", self.ns(host), *argv],
                    env=full_env, stdout=out, stderr=subprocess.STDOUT,
                    stdin=popen_kw.pop("stdin", subprocess.DEVNULL), **popen_kw,
                )  # fmt: skip
        else:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *argv], env=full_env, **popen_kw
            )
        self._procs.append((proc, log, f"{host}:{label}"))
        return proc

    def output_of(self, proc: subprocess.Popen[bytes]) -> str:
        """What a process started by `run` (without redirection) has written so far."""
        for p, log, _ in self._procs:
            if p is proc and log is not None:
                return log.read_text(errors="replace")
        raise KeyError("process has no log (started with its own stdout/stderr)")

    def check_output(
        self,
        host: str,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:
        """Run `argv` in `host` to completion; return stdout (NetnsError on failure if check)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns(host), *argv],
            input=input, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **env} if env is not None else None, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise NetnsError(
                f"[{host}] {' '.join(argv)} -> rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return proc.stdout

    def worker(self, host: str) -> NsWorker:
        if host not in self._workers:
            self._workers[host] = NsWorker(self.ns(host))
        return self._workers[host]

    def call(
        self,
        host: str,
        fn: Callable[..., T],
        *args: Any,
        call_timeout: float | None = 60.0,
        **kw: Any,
    ) -> T:
        """Call `fn(*args, **kw)` on `host`'s worker thread (sockets it opens live in `host`).

        Calls to one host run one after another; use `submit` for something that blocks.
        `call_timeout` bounds the wait and is not passed to `fn`.
        """
        return self.worker(host).call(fn, *args, call_timeout=call_timeout, **kw)

    def submit(self, host: str, fn: Callable[..., T], *args: Any, **kw: Any) -> Future[T]:
        """Like `call`, but on a fresh thread in `host`, returning a Future at once."""
        fut: Future[T] = Future()
        ns = self.ns(host)

        def run() -> None:
            try:
                setns_current_thread(ns)
                fut.set_result(fn(*args, **kw))
            except BaseException as exc:
                fut.set_exception(exc)

        threading.Thread(target=run, name=f"ns-{host}-submit", daemon=True).start()
        return fut

    def wait_tcp(self, host: str, ip: str, port: int, timeout: float = 20.0) -> None:
        """Wait until `ip:port` accepts a TCP connection made from inside `host`."""

        def probe() -> None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection((ip, port), timeout=1).close()
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

        self.submit(host, probe).result(timeout=timeout + 5)

    def start(
        self,
        host: str,
        argv: Sequence[str],
        *,
        ready_tcp: tuple[str, int] | None = None,
        ready_text: str | None = None,
        timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """`run` a daemon and wait until it accepts on `ready_tcp` and/or logs `ready_text`."""
        proc = self.run(host, argv, env=env, name=name)
        deadline = time.monotonic() + timeout
        try:
            if ready_text is not None:
                while ready_text not in self.output_of(proc):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise NetnsError(f"no {ready_text!r} from {argv[0]}")
                    time.sleep(0.05)
            if ready_tcp is not None:
                fut = self.submit(host, self._probe_until, proc, ready_tcp, deadline)
                fut.result(timeout=timeout + 5)
        except (NetnsError, OSError, TimeoutError) as exc:
            tail = self.output_of(proc)[-3000:]
            raise NetnsError(f"[{host}] {' '.join(argv)} did not get ready: {exc}\n{tail}") from exc
        return proc

    @staticmethod
    def _probe_until(
        proc: subprocess.Popen[bytes], addr: tuple[str, int], deadline: float
    ) -> None:
        while True:
            try:
                socket.create_connection(addr, timeout=1).close()
                return
            except OSError:
                if proc.poll() is not None:
                    raise NetnsError(f"exited with {proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

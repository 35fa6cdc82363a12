"""Running the real `sp2p` CLI next to a browser: spawn, scrape the transfer code, wait."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.web.flows import CODE_RE

REPO_ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """One `python -m sp2p ...` process; output lines collected from stdout and stderr."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sp2p", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd or REPO_ROOT,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace"))

    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def wait_code(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = CODE_RE.search(self.output())
            if match:
                return match.group(0)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no transfer code from the CLI:\n{self.output()[-3000:]}")

    def wait(self, timeout: float = 300.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            for t in self._threads:
                t.join(2)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

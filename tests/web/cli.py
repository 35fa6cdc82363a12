"""Running the real `sp2p` CLI next to a browser: spawn, scrape the transfer code, wait; and the
CLI <-> browser steps the Chromium and Firefox tests share."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.web.flows import CODE_RE, NO_PICKERS, shot, wait_outcome

REPO_ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """One `python -m sp2p ...` process (or `program ...`, e.g. the Go reference CLI); output
    lines collected from stdout and stderr."""

    def __init__(self, *args: str, cwd: Path | None = None, env_extra: dict[str, str] | None = None,
                 entry: tuple[str, ...] = ("-m", "sp2p"), program: str | None = None,
                 repo: Path | None = None) -> None:
        """`repo`: run the sp2p of another checkout (benches compare trees); default this one."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SP2P_")}
        env.update(env_extra or {})
        root = str(repo or REPO_ROOT)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [program, *args] if program else [sys.executable, *entry, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd or repo or REPO_ROOT,
        )
        self.lines: list[str] = []
        self.timed: list[tuple[float, str]] = []  # (time.monotonic() when read, line)
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._lock:
                self.lines.append(line)
                self.timed.append((time.monotonic(), line))

    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def line_time(self, needle: str) -> float | None:
        """time.monotonic() at which the first line containing `needle` was read, if any."""
        with self._lock:
            return next((t for t, line in self.timed if needle in line), None)

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


def cli_send(clis: list[Cli], web_base: str, *paths: Path) -> tuple[Cli, str]:
    """`sp2p send paths...` against the test server; returns the process and its code."""
    cli = Cli("send", "-server", web_base, *map(str, paths))
    clis.append(cli)
    return cli, cli.wait_code()


def cli_receive(clis: list[Cli], web_base: str, out: Path, code: str) -> Cli:
    cli = Cli("receive", "-server", web_base, "-output", str(out), code)
    clis.append(cli)
    return cli


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
    return path


def make_tree(root: Path) -> Path:
    """root/project with nested dirs, a non-ASCII name, a 400 kB binary and an empty dir."""
    top = root / "project"
    (top / "src" / "deep").mkdir(parents=True)
    (top / "README.md").write_text("hello\n")
    (top / "src" / "main.py").write_text("print('hi')\n")
    (top / "src" / "deep" / "data.bin").write_bytes(os.urandom(400_000))
    (top / "src" / "deep" / "ünï.txt").write_text("u")
    (top / "empty").mkdir()
    return top


def browser_download(page: Any, web_base: str, code: str, dest: Path, *, shots: str = "") -> tuple[Path, str]:
    """Confirm on /r#code and save the streamed (service-worker) download; fails fast if the page
    shows an error. Returns the saved file and "preview name|preview size|download name".
    With `shots`, screenshots `<shots>-card` and `<shots>-done` are kept."""
    page.add_init_script(NO_PICKERS)
    page.goto(f"{web_base}/r#{code}")
    page.wait_for_selector("#save-btn:visible", timeout=60_000)
    preview = (page.text_content("#confirm-file") or "", page.text_content("#confirm-size") or "")
    if shots:
        shot(page, f"{shots}-card")
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#save-btn")
    outcome = wait_outcome(page, timeout_ms=600_000)
    assert outcome == "done", outcome
    if shots:
        shot(page, f"{shots}-done")
    assert len(downloads) == 1
    target = dest / "downloaded"
    downloads[0].save_as(target)
    return target, f"{preview[0]}|{preview[1]}|{downloads[0].suggested_filename}"

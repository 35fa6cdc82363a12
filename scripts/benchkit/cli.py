"""This checkout's CLI on a loopback sp2p-server: one timed transfer and the rate it reports."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.benchkit.cpu import ChildCpu
from scripts.benchkit.inputs import tree_size
from tests.e2e.harness import cli_env, finish, read_code, spawn
from tests.support.server_proc import NO_LIMIT_FLAGS, start_server

#: the receiver's summary line, "… received in 2s (251.3 MiB/s) via TCP" (sp2p.term.ui.human_size)
_RECEIVED = re.compile(r"received in \S+ \(([\d.]+) (B|KiB|MiB|GiB|TiB)/s\)")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def reported_rate(output: str, size: int, elapsed: float) -> float:
    """MB/s (10^6 B/s) of the transfer phase as the receiver reports it; `size / elapsed`
    when the output has no summary line."""
    m = _RECEIVED.search(output)
    return float(m.group(1)) * _UNITS[m.group(2)] / 1e6 if m else size / elapsed / 1e6


@dataclass(frozen=True)
class Transfer:
    rate: float  #: MB/s as the receiver reports the transfer phase
    end_to_end: float  #: MB/s from the receiver's start to both peers' exit
    cpu: float  #: CPU seconds of both peers


class LoopbackPair:
    """A real sp2p-server (no rate limits) on 127.0.0.1 and a clean config home."""

    def __init__(self, home: Path) -> None:
        self.server = start_server(*NO_LIMIT_FLAGS, timeout=60)
        (home / ".config").mkdir(parents=True, exist_ok=True)
        self.env = cli_env(self.server.http_url, home)
        self._work = home

    def transfer(self, src: Path, *flags: str, main: Sequence[str] = ("-m", "sp2p")) -> Transfer:
        """`sp2p send FLAGS SRC` -> `sp2p receive` into a fresh folder (removed after); `main`
        runs the sender through a wrapper such as scripts/benchkit/fixed_level.py."""
        out = Path(tempfile.mkdtemp(dir=self._work, prefix="out-"))
        try:
            with ChildCpu() as cpu:
                sender = spawn(["send", *flags, str(src)], self.env, main=main)
                code = read_code(sender)
                start = time.perf_counter()
                r = finish(spawn(["receive", "-output", str(out), code], self.env), timeout=900)
                s = finish(sender, timeout=60)
                elapsed = time.perf_counter() - start
            if r.rc or s.rc:
                raise SystemExit(f"transfer failed: {s.err[-400:]} {r.err[-400:]}")
            size = tree_size(src)
            return Transfer(reported_rate(r.err, size, elapsed), size / elapsed / 1e6, cpu.seconds)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> LoopbackPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

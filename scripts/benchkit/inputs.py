"""Benchmark inputs and their checks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

MiB = 1 << 20
#: one line of a web server's log: compresses like real logs (zstd-3 about 10x)
LOG_LINE = b"2026-11-25T06:00:00Z INFO request id=%08d path=/api/v1/items status=200 bytes=%d\n"


def write_random(path: Path, size: int) -> Path:
    """`size` bytes (whole MiB) of incompressible data."""
    with path.open("wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    return path


def write_log(path: Path, size: int) -> Path:
    """`size` bytes of log-like text."""
    with path.open("wb") as f:
        i = 0
        while f.tell() < size:
            f.write(b"".join(LOG_LINE % (i + k, (i + k) * 7 % 9999) for k in range(1000)))
            i += 1000
        f.truncate(size)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

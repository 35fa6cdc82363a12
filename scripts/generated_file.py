"""Write a generated file, or with --check say whether the committed copy is current."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, check: bool, generator: str) -> int:
    """The exit status: 1 when checking a missing or stale copy (naming `generator`)."""
    if check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale: run python3 scripts/{generator}", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0

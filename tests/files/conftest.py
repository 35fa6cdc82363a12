"""Fixtures for the file-handling tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

GOTAR_SOURCE = Path(__file__).parent / "gotar" / "main.go"


@pytest.fixture(scope="session")
def gotar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Go's archive/tar as a command (tests/files/gotar): the reader Go receivers use."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert Path(go).exists(), "the Go toolchain is part of the machine image; it is missing"
    binary = tmp_path_factory.mktemp("gotar") / "gotar"
    subprocess.run([go, "build", "-o", str(binary), str(GOTAR_SOURCE)], check=True,
                   capture_output=True, env={**os.environ, "CGO_ENABLED": "0"})
    return binary


@pytest.fixture
def area(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(output dir, sentinel dir beside it); the sentinel must stay empty."""
    out = tmp_path / "out"
    out.mkdir()
    sentinel = tmp_path / "outside"
    sentinel.mkdir()
    yield out, sentinel
    assert list(sentinel.iterdir()) == []

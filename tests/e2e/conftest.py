"""Fixtures of the e2e tests: the 200 MiB source of the resume and heal tests (cut_transfer.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.cut_transfer import write_big_file


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cut_transfer.SIZE incompressible bytes, written once per test module that asks."""
    return write_big_file(tmp_path_factory.mktemp("src") / "big.bin")


@pytest.fixture
def src(big_file: Path, tmp_path: Path) -> Path:
    """A test's own copy of big_file, free to change or delete."""
    copy = tmp_path / "movie.bin"
    shutil.copyfile(big_file, copy)
    return copy

"""Every test node id the docs cite (`tests/….py::test_name`) names a test that is there.

docs/security.md maps each security case to the tests that cover it; a test moved to
another file or renamed must take its rows along.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.dist.helpers import REPO_ROOT

DOCS = sorted([*REPO_ROOT.glob("docs/*.md"), REPO_ROOT / "README.md"])
_NODE_ID = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_cited_tests_exist(doc: Path) -> None:
    missing = []
    for path, name in _NODE_ID.findall(doc.read_text()):
        source = REPO_ROOT / path
        defined = source.is_file() and re.search(
            rf"^(?:\s*(?:async )?def|class) {name}\b", source.read_text(), re.M
        )
        if not defined:
            missing.append(f"{path}::{name}")
    assert missing == []


def test_security_md_cites_tests() -> None:
    """The check above has something to check."""
    assert len(_NODE_ID.findall((REPO_ROOT / "docs" / "security.md").read_text())) > 100

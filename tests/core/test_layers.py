"""The package map in the README holds: each package of sp2p imports only what sits below it.

Scanned statically over the AST (imports inside functions count too), so a lazy import
cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SP2P = Path(__file__).resolve().parents[2] / "sp2p"
#: package -> the sp2p packages/modules it may import (besides itself)
ALLOWED = {
    "proto": {"errors", "record"},
    "net": {"errors", "record", "log", "proto"},
    "term": set(),
    "fs": {"errors", "record", "log", "proto", "term"},
    "link": {"errors", "record", "log", "proto", "net", "fs"},
}


def _imported(path: Path) -> set[str]:
    """Second components of every `sp2p.X` imported by the module at `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found |= {n.split(".")[1] for n in names if n.startswith("sp2p.") and n.count(".") >= 1}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_below_it(package: str) -> None:
    wrong = {
        f"{path.name} imports sp2p.{name}"
        for path in (SP2P / package).glob("*.py")
        for name in _imported(path) - ALLOWED[package] - {package}
    }
    assert wrong == set()


def test_the_scan_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sp2p.flow.resume import receive_resume\n")
    assert _imported(module) == {"flow"}

"""server/ has no import cycles, deferred imports inside functions included (issue 17: state
and ws imported each other; the teardown they share is server/teardown.py now)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("server"):
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            found.update(n for n in names if (SERVER.parent / (n.replace(".", "/") + ".py")).exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("server."))
    return found


def test_no_module_of_the_server_imports_itself_back() -> None:
    graph = {f"server.{p.stem}": imports_of(p) for p in SERVER.glob("*.py") if p.stem != "__init__"}
    cycles = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and nxt in graph:
                walk(nxt, [*path, nxt])

    for start in graph:
        walk(start, [start])
    assert cycles == []

"""server/ has no import cycles, deferred imports inside functions included (issue 17: state
and ws imported each other; the teardown they share is server/teardown.py now)."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def test_the_arbiter_does_not_load_prometheus_client() -> None:
    """prometheus_client picks its multiprocess mode when first imported; the arbiter sets
    PROMETHEUS_MULTIPROC_DIR only just before it forks the workers, so loading the server's
    gunicorn module must not import it (if it did, /metrics answered empty with -workers 2)."""
    probe = "import sys, server.gunicorn_app; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=SERVER.parent
    )
    assert result.stdout.strip() == "False", result.stderr

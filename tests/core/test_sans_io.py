"""sp2p.proto must stay sans-IO: no sockets, threads, event loop, clock, logging or web stack.

Two guards that can fail (issue 16 item 7): a static one over the AST of every module in
sp2p/proto (catches lazy imports inside functions too), and a runtime one in an interpreter
started with -S -I, where none of the forbidden modules is loaded before the import. The old
guard snapshotted sys.modules after a normal start, when threading was already loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PROTO = Path(__file__).resolve().parents[2] / "sp2p" / "proto"
REPO = PROTO.parents[1]
FORBIDDEN = frozenset(
    {"socket", "threading", "asyncio", "time", "logging", "selectors", "select", "aiortc", "flask",
     "websocket", "websockets", "rich", "subprocess", "concurrent"}
)
#: a fresh `python -S -I` has `time` loaded already (the interpreter imports it at start), so
#: only the static guard can see it
PRELOADED = frozenset({"time"})
MODULES = sorted(p for p in PROTO.glob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "__import__", "import_module",
        ):
            found += [(node.lineno, a.value) for a in node.args[:1] if isinstance(a, ast.Constant)
                      and isinstance(a.value, str)]
    return found


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_io_imports_anywhere_in_the_core(path: Path) -> None:
    bad = [f"{path.name}:{line} imports {name}" for line, name in _imports(ast.parse(path.read_text()))
           if name.split(".")[0] in FORBIDDEN]
    assert not bad, bad


def test_the_static_guard_can_fail() -> None:
    code = "def f():\n    import threading\n    from time import monotonic\n    __import__('socket')\n"
    assert {name for _, name in _imports(ast.parse(code))} == {"threading", "time", "socket"}


def _loaded_by_importing_proto(extra: str = "") -> set[str]:
    code = (
        "import sys, json, importlib\n"
        f"sys.path[:0] = {[str(REPO), sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']]!r}\n"
        "before = set(sys.modules)\n"
        f"{extra}\n"
        f"for name in {[p.stem for p in MODULES if p.stem != '__init__']!r}:\n"
        "    importlib.import_module('sp2p.proto.' + name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_every_core_module_loads_no_io_modules() -> None:
    loaded = _loaded_by_importing_proto()
    assert "sp2p.proto.frames" in loaded and "sp2p.proto.transfer" in loaded
    top = {name.split(".")[0] for name in loaded}
    assert not top & FORBIDDEN, sorted(top & FORBIDDEN)


def test_the_runtime_guard_can_fail() -> None:
    loaded = _loaded_by_importing_proto(extra="import logging")
    assert {"logging", "threading"} <= {name.split(".")[0] for name in loaded}
    assert not PRELOADED & {name.split(".")[0] for name in loaded}

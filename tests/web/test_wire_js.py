"""static/js/wire.js is the web UI's one copy of the wire facts: generated from Python's modules,
current, read by Chromium as the same values, and the only place in static/js that defines them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen_wire_js.py"
JS_DIR = REPO / "static" / "js"


def generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def python_values() -> dict[str, Any]:
    out = generator("--json")
    assert out.returncode == 0, out.stderr
    values: dict[str, Any] = json.loads(out.stdout)
    return values


def test_wire_js_is_current() -> None:
    out = generator("--check")
    assert out.returncode == 0, out.stderr


def test_a_stale_copy_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "wire.js"
    stale.write_text((JS_DIR / "wire.js").read_text().replace("PROTOCOL_VERSION = 2", "PROTOCOL_VERSION = 3"))
    out = generator("--check", "--file", str(stale))
    assert out.returncode == 1
    assert "stale" in out.stderr and "gen_wire_js.py" in out.stderr


def test_python_values_are_the_wire_facts(python_values: dict[str, Any]) -> None:
    from sp2p.proto.constants import PROTOCOL_VERSION, MsgType

    assert python_values["PROTOCOL_VERSION"] == PROTOCOL_VERSION
    assert python_values["MsgType"]["FinAck"] == MsgType.FIN_ACK == 0x07
    assert python_values["CancelReason"] == {"UserAbort": 1, "InternalError": 2}
    assert python_values["SignalType"]["PeerJoined"] == "peer-joined"


@pytest.mark.browser
def test_chromium_reads_the_python_values(js_page: Any, python_values: dict[str, Any]) -> None:
    got = js_page.evaluate("async () => JSON.parse(JSON.stringify(await import('/static/js/wire.js')))")
    assert got == python_values


def test_no_other_module_defines_a_wire_fact(python_values: dict[str, Any]) -> None:
    names = "|".join(map(re.escape, python_values))
    defines = re.compile(rf"\b(?:const|let|var)\s+(?:{names})\s*=")
    hits = []
    for path in sorted(JS_DIR.glob("*.js")) + [REPO / "static" / "sw.js"]:
        if path.name == "wire.js":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if defines.search(line):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert hits == []


def test_pages_spell_no_protocol_literals() -> None:
    """No `version: 2`, no signal type written as a string where a message is sent or awaited."""
    literal = re.compile(r"version:\s*\d|sig\.send\(\s*[\"']|\.next\(\s*\[\s*[\"']|failOn[:=\s]+\[\s*[\"']")
    hits = []
    for path in sorted(JS_DIR.glob("*.js")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert hits == []

"""sp2p.proto must stay sans-IO: importing it loads no sockets, threads, event loop or web stack."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ["socket", "threading", "asyncio", "aiortc", "flask", "select", "selectors", "websocket"]


def test_importing_proto_loads_no_io_modules() -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import sp2p.proto.codes, sp2p.proto.keys, sp2p.proto.frames, sp2p.proto.messages\n"
        "import sp2p.proto.transfer, sp2p.proto.compression, sp2p.proto.fileinfo, sp2p.proto.signal\n"
        "import sp2p.proto.tar\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "sp2p.proto.frames" in loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)

"""Reading what a CLI running in a lab namespace printed: its transfer code and transport."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from sp2p.proto.codes import CODE_PATTERN

CODE_RE = CODE_PATTERN
SUMMARY_RE = re.compile(r"(?:sent|received) in .* via (TCP|WebRTC \(relay\)|WebRTC)\s*$", re.M)


def transport_of(output: str) -> str | None:
    """The transport named in the final summary line, if the transfer got that far."""
    found = SUMMARY_RE.findall(output)
    return found[-1] if found else None


def wait_code(lab, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:  # noqa: ANN001 - Lab
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = CODE_RE.search(lab.output_of(proc))
        if m:
            return m.group(0)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"sender printed no code:\n{lab.output_of(proc)}")

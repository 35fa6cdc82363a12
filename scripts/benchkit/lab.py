"""The 70 ms link of the benchmarks, in network namespaces (root): h1 (sender) behind the
user-space TUN delay line of tests/netlab, h2 (receiver) on the same LAN, sp2p-server in pub.

The one place scripts reach into tests/netlab.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from scripts.benchkit import REPO
from sp2p.proto.codes import CODE_PATTERN
from tests.netlab import Lab

SENDER, RECEIVER = "h1", "h2"
#: the CLI and server of this checkout, whatever is installed on PATH
SP2P = [sys.executable, "-m", "sp2p"]
SERVER = [sys.executable, "-m", "server"]

__all__ = ["RECEIVER", "SENDER", "SERVER", "SP2P", "Lab", "link_lab", "start_server", "tail", "wait_code"]


@contextlib.contextmanager
def link_lab(delay_ms: float, *, offload: bool = True, verbose: bool = False) -> Iterator[Lab]:
    """The lab, with this checkout's CLI and an empty config in every child's environment."""
    with Lab.create(same_lan=True, delay_ms=delay_ms, delay_host=SENDER, delay_offload=offload) as lab:
        lab.print_logs = verbose
        _clean_env(lab)
        yield lab


def _clean_env(lab: Lab) -> None:
    """Child processes run this checkout's sp2p with an empty config and no SP2P_* leftovers."""
    for key in [k for k in os.environ if k.startswith("SP2P_")]:
        del os.environ[key]
    home = lab.workdir / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "PYTHONUNBUFFERED": "1",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    })  # fmt: skip


def start_server(lab: Lab, *flags: str) -> str:
    """sp2p-server in pub; its URL."""
    return str(lab.start_server([*SERVER, *flags, "-addr", f"{lab.ip('pub')}:8080"]).url)


def tail(text: str) -> str:
    """The last non-empty line of a process's output (for one-line failure notes)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:160] if lines else "(no output)"


def wait_code(lab: Lab, sender: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """The transfer code a lab sender printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if m := CODE_PATTERN.search(lab.output_of(sender)):
            return m.group(0)
        if sender.poll() is not None:
            raise RuntimeError(f"sender exited before printing a code: {tail(lab.output_of(sender))}")
        time.sleep(0.02)
    raise RuntimeError(f"no transfer code within {timeout:g} s")
